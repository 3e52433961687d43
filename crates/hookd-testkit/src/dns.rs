//! A real DNS server on 127.0.0.1 (UDP) whose answers the test sets, and may change while
//! hookd runs: point `hookd serve --dns-server` at it to make a name resolve to a private
//! address, or to one address at registration and another at delivery (DNS rebinding).
//!
//! Names the test has not set get `NXDOMAIN`; a set name gets its IPv4 addresses for `A`
//! and its IPv6 addresses for `AAAA` (an empty answer when it has none of that kind).
//! Answers carry a TTL of 0, so no resolver may keep them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Zone {
    /// Lowercase names without the trailing dot, and their addresses.
    records: HashMap<String, Vec<IpAddr>>,
    /// Every name asked for, in order (lowercase, without the trailing dot).
    asked: Vec<String>,
}

pub struct DnsServer {
    address: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the test DNS server: {e}"));
        let address = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("the test DNS server has no address: {e}"));
        let zone = Arc::new(Mutex::new(Zone::default()));
        let task = tokio::spawn(serve(socket, Arc::clone(&zone)));
        DnsServer {
            address,
            zone,
            task,
        }
    }

    /// Where it listens: the value for `--dns-server`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// From now on `name` resolves to `addresses` (none: the name exists with no address).
    pub fn set(&self, name: &str, addresses: &[IpAddr]) {
        self.with_zone(|zone| {
            zone.records.insert(normalize(name), addresses.to_vec());
        });
    }

    /// How many queries (of any type) have asked for `name` so far.
    pub fn queries_for(&self, name: &str) -> usize {
        let name = normalize(name);
        self.with_zone(|zone| zone.asked.iter().filter(|asked| **asked == name).count())
    }

    fn with_zone<T>(&self, f: impl FnOnce(&mut Zone) -> T) -> T {
        f(&mut self.zone.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let Some(request) = buffer.get(..length).and_then(|b| Message::from_vec(b).ok()) else {
            continue;
        };
        let response = {
            let mut zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
            answer(&request, &mut zone)
        };
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn answer(request: &Message, zone: &mut Zone) -> Message {
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.edns = request.edns.clone();
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response;
    }
    let name = normalize(&query.name().to_ascii());
    zone.asked.push(name.clone());
    let Some(addresses) = zone.records.get(&name) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    };
    let wanted = query.query_type();
    for &ip in addresses {
        let matches = match ip {
            IpAddr::V4(_) => wanted == RecordType::A,
            IpAddr::V6(_) => wanted == RecordType::AAAA,
        };
        if matches {
            response.add_answer(Record::from_rdata(query.name().clone(), 0, RData::from(ip)));
        }
    }
    response
}
