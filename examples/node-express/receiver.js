// A webhook receiver for hookd, with Express.
//
//     npm ci
//     HOOKD_WEBHOOK_SECRET=whsec_... node receiver.js 3000
//
// POST /webhooks verifies the signature over the raw body (Standard Webhooks when its
// headers are there, else the hex header x-nextpay-signature / X-Webhook-Signature), drops
// events it has handled before (by webhook-id), answers at once and prints one line per
// delivery:
//
//     verified payment_intent.paid evt_01... (standard-webhooks)
//     duplicate evt_01...
//     rejected: webhook-signature does not match this secret and body
"use strict";

const crypto = require("node:crypto");
const express = require("express");

const SECRET = process.env.HOOKD_WEBHOOK_SECRET;
if (!SECRET) {
  console.error("set HOOKD_WEBHOOK_SECRET to the webhook's signing secret (whsec_...)");
  process.exit(2);
}
// How far webhook-timestamp may be from now, either way: limits replays of a captured
// request.
const TOLERANCE_SECONDS = 5 * 60;
const HEX_HEADERS = ["x-nextpay-signature", "x-webhook-signature"];

class VerificationError extends Error {}

// Constant-time comparison of two strings (false for different lengths).
function sameText(a, b) {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

// Checks the signature of a delivery; returns the scheme that verified.
function verify(headers, body) {
  const signatures = headers["webhook-signature"];
  if (signatures !== undefined) {
    return verifyStandardWebhooks(headers, body, signatures);
  }
  for (const name of HEX_HEADERS) {
    const value = headers[name];
    if (value !== undefined) {
      // Keyed with the whole secret string, `whsec_` included.
      const expected = crypto.createHmac("sha256", SECRET).update(body).digest("hex");
      if (!sameText(value.trim().toLowerCase(), expected)) {
        throw new VerificationError(`${name} does not match this secret and body`);
      }
      return name;
    }
  }
  throw new VerificationError("no signature header (webhook-signature, x-nextpay-signature)");
}

function verifyStandardWebhooks(headers, body, signatures) {
  const msgId = (headers["webhook-id"] || "").trim();
  const timestamp = (headers["webhook-timestamp"] || "").trim();
  if (!msgId || !timestamp) {
    throw new VerificationError("webhook-signature without webhook-id and webhook-timestamp");
  }
  if (!/^[0-9]+$/.test(timestamp)) {
    throw new VerificationError("webhook-timestamp is not unix seconds");
  }
  // Keyed with the base64-decoded part after `whsec_`.
  const key = Buffer.from(SECRET.replace(/^whsec_/, ""), "base64");
  const expected = crypto
    .createHmac("sha256", key)
    .update(`${msgId}.${timestamp}.`)
    .update(body)
    .digest("base64");
  // Several signatures during a secret rotation: any v1 one may match.
  const matched = signatures
    .split(" ")
    .filter((entry) => entry.startsWith("v1,"))
    .some((entry) => sameText(entry.slice(3), expected));
  if (!matched) {
    throw new VerificationError("webhook-signature does not match this secret and body");
  }
  // After the signature, so this error means a genuine but stale (or replayed) request.
  const drift = Math.floor(Date.now() / 1000) - Number(timestamp);
  if (Math.abs(drift) > TOLERANCE_SECONDS) {
    throw new VerificationError(
      `webhook-timestamp is ${drift}s from now, outside the ${TOLERANCE_SECONDS}s tolerance`,
    );
  }
  return "standard-webhooks";
}

// Event ids handled lately, at most `capacity`, least recently seen evicted first. In
// memory: a receiver with several processes, or that must not act twice across a
// restart, keeps them in its database (a unique key on the id).
class SeenEvents {
  constructor(capacity = 10000) {
    this.ids = new Set();
    this.capacity = capacity;
  }

  firstTime(eventId) {
    if (this.ids.has(eventId)) {
      this.ids.delete(eventId); // re-insert: a Set iterates in insertion order
      this.ids.add(eventId);
      return false;
    }
    this.ids.add(eventId);
    if (this.ids.size > this.capacity) {
      this.ids.delete(this.ids.values().next().value);
    }
    return true;
  }
}

const seen = new SeenEvents();
const app = express();

// express.raw keeps the body as the exact bytes sent (a Buffer): a signature covers
// them, not JSON.stringify(JSON.parse(body)).
app.post("/webhooks", express.raw({ type: () => true, limit: "1mb" }), (req, res) => {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  let scheme;
  try {
    scheme = verify(req.headers, body);
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err;
    // A 4xx is final for hookd: no retry of a delivery this receiver will never accept.
    console.log(`rejected: ${err.message}`);
    return res.status(401).send("invalid signature");
  }
  let envelope;
  try {
    envelope = JSON.parse(body.toString("utf8"));
  } catch {
    envelope = null;
  }
  if (envelope === null || typeof envelope !== "object" || Array.isArray(envelope)) {
    console.log("rejected: the body is not a hookd envelope");
    return res.status(400).send("not a hookd envelope");
  }
  // `typed` envelopes say {"type": …}, `event` ones {"event": …}.
  const eventType = envelope.type || envelope.event;
  // webhook-id is the event id on every delivery; the `typed` body has it too.
  const eventId = req.headers["webhook-id"] || envelope.id;
  if (!eventType || !eventId) {
    console.log("rejected: no event type or id");
    return res.status(400).send("not a hookd envelope");
  }
  if (!seen.firstTime(eventId)) {
    console.log(`duplicate ${eventId}`);
    return res.status(200).send("duplicate");
  }
  // Real work goes to a queue here, so the answer is not held up by it.
  console.log(`verified ${eventType} ${eventId} (${scheme})`);
  return res.status(200).send("ok");
});

const port = Number(process.argv[2] || 3000);
const server = app.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/webhooks`);
});
process.on("SIGTERM", () => server.close());
