// Example verification in Node.js
const crypto = require('crypto');
function verifyWebhookSignature(requestBody, signature, secret) {
const hmac = crypto.createHmac('sha256', secret);
const calculatedSignature = hmac.update(requestBody).digest('hex');
return calculatedSignature === signature;
}
