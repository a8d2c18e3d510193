// Webhook management example
const URL = "https://sandbox.circularo.com";
const API_PATH = "/api/v1";
const TOKEN = "YOUR_AUTH_TOKEN"; // Obtained from login or API key
const CALLBACK_URL = "https://your-server.com/webhook-endpoint";
const HMAC_SECRET = "YourSecretKey123!"; // Secret for signature verification
try {
// Step 1: Create a webhook
const createResponse = await fetch(`${URL}${API_PATH}/webhooks?token=${TOKEN}`, {
method: 'POST',
headers: {
'Content-Type': 'application/json'
},
body: JSON.stringify({
type: "organization",
callbackUrl: CALLBACK_URL,
hmacSecret: HMAC_SECRET
})
});
if (!createResponse.ok) {
throw new Error(`Webhook creation failed: ${createResponse.status} ${createResponse.statusText}`);
}
const webhookData = await createResponse.json();
console.log(`Webhook created with ID: ${webhookData.id}`);
// Step 2: Retrieve all webhooks
const listResponse = await fetch(`${URL}${API_PATH}/webhooks?token=${TOKEN}`);
if (!listResponse.ok) {
throw new Error(`Failed to retrieve webhooks: ${listResponse.status} ${listResponse.statusText}`);
}
const webhooksData = await listResponse.json();
console.log(`Found ${webhooksData.total} webhooks`);
// Display webhook details
webhooksData.results.forEach((webhook) => {
console.log(`Webhook ID: ${webhook.id}`);
console.log(`Type: ${webhook.type}`);
console.log(`Callback URL: ${webhook.callbackUrl}`);
console.log(`Created by: ${webhook.creator} on ${new Date(webhook.createDate).toLocaleString()}`);
console.log('---');
});
// Step 3: Delete a webhook (when no longer needed)
const deleteResponse = await fetch(`${URL}${API_PATH}/webhooks/${webhookData.id}?token=${TOKEN}`, {
method: 'DELETE'
});
if (!deleteResponse.ok) {
throw new Error(`Webhook deletion failed: ${deleteResponse.status} ${deleteResponse.statusText}`);
}
const deleteResult = await deleteResponse.json();
console.log(`Webhook deleted successfully: ${deleteResult.status}`);
} catch (error) {
console.error('Error managing webhooks:', error.message);
}
