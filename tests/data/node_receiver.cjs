// A webhook receiver in Node.js that checks every request with the seed document's own
// verifyWebhookSignature (seed_verify.js, copied verbatim). Usage: node node_receiver.cjs SECRET
// Prints its port; POST answers 200 (valid) or 401 (invalid); GET /stats answers the counts.
const fs = require('fs');
const http = require('http');
const path = require('path');
const vm = require('vm');

const seedCode = fs.readFileSync(path.join(__dirname, 'seed_verify.js'), 'utf8');
const sandbox = { require, console };
vm.createContext(sandbox);
vm.runInContext(seedCode, sandbox);
const verifyWebhookSignature = sandbox.verifyWebhookSignature;

const secret = process.argv[2];
const stats = { accepted: 0, rejected: 0, unsigned: 0 };

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const signature = req.headers['x-circularo-signature'];
    if (signature === undefined) stats.unsigned += 1;
    const ok = signature !== undefined && verifyWebhookSignature(body, signature, secret);
    if (ok) stats.accepted += 1; else stats.rejected += 1;
    res.writeHead(ok ? 200 : 401);
    res.end(ok ? 'ok' : 'bad signature');
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
