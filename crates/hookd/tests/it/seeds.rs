//! The seeds' own sample receivers, run for real: Node's `crypto` and Python's `hmac`
//! verifying exactly as the seed documents show. Skipped (with a note) where `node` or
//! `python3` is missing; CI has both.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use hookd_testkit::server::delivery_status;
use hookd_testkit::{Backend, backend_tests};

use crate::start;

backend_tests!(
    the_seeds_node_receivers_accept_both_formats,
    the_seeds_python_receiver_accepts_typed_deliveries,
);

/// Seed 000 verifies the raw body; seed 003 verifies `JSON.stringify(JSON.parse(body))`.
/// Each answers 401 on a bad signature, so a succeeded delivery proves it verified.
const NODE_RECEIVER: &str = r#"
const http = require('http');
const crypto = require('crypto');
const secrets = JSON.parse(process.argv[1]); // with -e, argv[1] is the first argument
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const payload = Buffer.concat(chunks);
    let signature, expected;
    if (req.url === '/webhooks/nextpay') {
      signature = req.headers['x-nextpay-signature'] || '';
      expected = crypto.createHmac('sha256', secrets.nextpay).update(payload).digest('hex');
    } else {
      signature = req.headers['x-webhook-signature'] || '';
      const body = JSON.parse(payload.toString('utf8'));
      expected = crypto.createHmac('sha256', secrets.wickiepay).update(JSON.stringify(body)).digest('hex');
    }
    const ok = signature.length === expected.length &&
      crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
    res.writeHead(ok ? 200 : 401);
    res.end(ok ? 'OK' : 'Invalid signature');
  });
}).listen(0, '127.0.0.1', function () { console.log(this.address().port); });
"#;

const PYTHON_RECEIVER: &str = r#"
import hmac, hashlib, http.server, sys
SECRET = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        payload = self.rfile.read(int(self.headers.get('content-length', 0)))
        signature = self.headers.get('x-nextpay-signature') or ''
        expected = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(signature, expected)
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b'OK' if ok else b'Invalid signature')
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

async fn spawn_receiver(program: &str, args: &[&str]) -> Option<(Child, u16)> {
    let mut child = match Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        // CI must run these; elsewhere a missing interpreter only skips them.
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("cannot run {program}: {e}")
        }
        Err(e) => {
            eprintln!("skipping the {program} receiver: {e}");
            return None;
        }
    };
    // Started, it must work: a receiver that dies or prints no port fails the test.
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next_line().await.unwrap();
    let port = line.as_deref().and_then(|l| l.trim().parse().ok());
    let Some(port) = port else {
        panic!("the {program} receiver printed no port: {line:?}")
    };
    Some((child, port))
}

/// Data that trips naive re-serialization: unicode, escapes, floats, integer-like keys.
fn tricky_data() -> serde_json::Value {
    serde_json::from_str(
        r#"{"id":"pr_1","amount":10000.0,"rate":1e-7,"big":1e21,"name":"Zoë 🚀 \"quoted\" \\ \u0001 \u2028",
            "10":"ten","2":"two","nested":{"b":[1,2.50,{"x":null}],"a":true},"neg":-0}"#,
    )
    .unwrap()
}

async fn the_seeds_node_receivers_accept_both_formats(backend: Backend) {
    let hookd = start(backend).await;
    // Register first: the receiver needs the secrets.
    let nextpay = hookd
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/", "events": ["payout_request.*"], "enabled": false}),
        )
        .await;
    let wickiepay = hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["payment.*"], "format": "event", "enabled": false}))
        .await;
    let secrets =
        json!({"nextpay": nextpay["secret"], "wickiepay": wickiepay["secret"]}).to_string();
    let Some((_node, port)) = spawn_receiver("node", &["-e", NODE_RECEIVER, &secrets]).await else {
        return;
    };
    for (webhook, path) in [
        (&nextpay, "/webhooks/nextpay"),
        (&wickiepay, "/webhooks/wickiepay"),
    ] {
        let id = webhook["id"].as_str().unwrap();
        let (status, _) = hookd
            .patch(
                &format!("/v2/webhooks/{id}"),
                &json!({"url": format!("http://127.0.0.1:{port}{path}"), "enabled": true}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let typed = hookd
        .publish("payout_request.completed", tricky_data())
        .await;
    let event = hookd.publish("payment.completed", tricky_data()).await;
    for id in [typed, event] {
        let done = hookd
            .wait_for_event(&id, |e| delivery_status(e) != "pending")
            .await;
        let attempts = hookd.attempts(&id).await;
        assert_eq!(delivery_status(&done), "succeeded", "{attempts:?}");
    }
}

async fn the_seeds_python_receiver_accepts_typed_deliveries(backend: Backend) {
    let hookd = start(backend).await;
    let webhook = hookd
        .create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["*"], "enabled": false}))
        .await;
    let secret = webhook["secret"].as_str().unwrap();
    let Some((_python, port)) = spawn_receiver("python3", &["-c", PYTHON_RECEIVER, secret]).await
    else {
        return;
    };
    let id = webhook["id"].as_str().unwrap();
    hookd
        .patch(
            &format!("/v2/webhooks/{id}"),
            &json!({"url": format!("http://127.0.0.1:{port}/webhooks/nextpay"), "enabled": true}),
        )
        .await;
    let event_id = hookd.publish("payment_intent.paid", tricky_data()).await;
    let done = hookd
        .wait_for_event(&event_id, |e| delivery_status(e) != "pending")
        .await;
    assert_eq!(
        delivery_status(&done),
        "succeeded",
        "{:?}",
        hookd.attempts(&event_id).await
    );
}
