#!/usr/bin/env node
// Presign a Bedrock Runtime request with the JS v3 SDK's own signer (@smithy/signature-v4, the
// one every v3 client uses) and print the URL as JSON: {"url": "..."}.
//
// Usage: node presign.mjs '{"endpoint": "http://127.0.0.1:PORT", "path": "/model/ID/invoke",
//                          "body": "...", "expiresIn": 300, "region": "us-east-1"}'
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN).
// The body is part of the signature (its sha256 is the payload hash), so the caller must POST
// exactly that body to the URL.

import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";

class Sha256 {
  constructor(secret) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", secret);
  }
  update(data) {
    this.hash.update(typeof data === "string" ? Buffer.from(data, "utf-8") : data);
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}

const cmd = JSON.parse(process.argv[2]);
const endpoint = new URL(cmd.endpoint);
const signer = new SignatureV4({
  service: "bedrock",
  region: cmd.region ?? "us-east-1",
  sha256: Sha256,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    sessionToken: process.env.AWS_SESSION_TOKEN,
  },
});
const request = {
  method: "POST",
  protocol: endpoint.protocol,
  hostname: endpoint.hostname,
  port: endpoint.port ? Number(endpoint.port) : undefined,
  path: cmd.path,
  query: {},
  headers: { host: endpoint.host },
  body: cmd.body,
};
const signed = await signer.presign(request, { expiresIn: cmd.expiresIn ?? 300 });
const query = Object.entries(signed.query)
  .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
  .join("&");
process.stdout.write(JSON.stringify({ url: `${cmd.endpoint}${signed.path}?${query}` }) + "\n");
