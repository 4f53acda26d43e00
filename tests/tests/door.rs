//! The public port against strangers (issue 14, item 6): connections over
//! the caps are closed at once, connections without an acceptable
//! certificate are never kept, idle authenticated connections time out, and
//! through all of it an agency sends and receives and the hub's descriptors
//! stay under the cap.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use truc_hub::metrics::{parse_exposition, Sample};
use truc_tests::{document_id, eventually, header, identity, sign, TestHub, TestPki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// Raise this process's open-file limit to its hard limit (the hub, its
/// strangers and its clients all live here); returns the new limit.
fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    setrlimit(Resource::Nofile, l).expect("raise RLIMIT_NOFILE");
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Sockets of this process whose local address is 127.0.0.1:`port` (the
/// hub's side of its gRPC connections; the listener excluded): the hub's
/// descriptors on its public port. The strangers' own sockets (remote
/// port = `port`) are not counted.
fn hub_sockets(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    let mine: HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f[3] == "0A";
            let inode: u64 = f[9].parse().unwrap_or(0);
            f[1] == local && !listening && mine.contains(&inode)
        })
        .count()
}

/// The hub's `/metrics`.
async fn metrics(hub: &TestHub) -> Vec<Sample> {
    parse_exposition(&truc_tests::admin_get(hub, "/metrics").await.body)
}

fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
}

/// A TLS client config that trusts the hub, with `client` as its
/// certificate (or none).
fn tls_client(hub: &TestHub, client: Option<&truc_pki::Identity>) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(hub.pki.pki.ca_der().to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(id.cert_der.clone())],
                PrivateKeyDer::try_from(id.key_pkcs8_der.clone()).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// How a stranger behaves once its TCP connection is up.
#[derive(Clone, Copy, Debug)]
enum Stranger {
    /// Says nothing.
    Silent,
    /// Sends the start of a TLS ClientHello, then nothing.
    HalfHello,
    /// Completes TLS without a client certificate, then says nothing.
    NoCertificate,
    /// Completes TLS with a certificate of another CA, then says nothing.
    ForeignCertificate,
}

/// Wait until the hub closes `s` (end of file or an error), or `release`.
async fn until_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S, release: &mut watch::Receiver<bool>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            },
            _ = release.changed() => return false,
        }
    }
}

/// One stranger from `from`: connect, behave, and report whether the hub
/// closed the connection before `release`.
async fn stranger(
    kind: Stranger,
    from: IpAddr,
    hub: SocketAddr,
    connectors: (tokio_rustls::TlsConnector, tokio_rustls::TlsConnector),
    connecting: Arc<tokio::sync::Semaphore>,
    local: Arc<std::sync::OnceLock<SocketAddr>>,
    mut release: watch::Receiver<bool>,
) -> bool {
    let (none, foreign) = connectors;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    // A few hundred connects at a time: a burst of thousands would overflow
    // the kernel's accept queue, whose overflow is not the hub's doing
    // (a silent client whose handshake the kernel dropped never reaches it).
    let permit = connecting.acquire().await.unwrap();
    // A connect the kernel has not completed in 20 s had its SYNs dropped
    // (the accept queue was full): it never reached the hub, which holds
    // nothing of it. Without this bound its retries would run for two
    // minutes (tcp_syn_retries) and outlast the test's wait.
    let Ok(Ok(mut tcp)) = tokio::time::timeout(Duration::from_secs(20), socket.connect(hub)).await else {
        return true;
    };
    drop(permit);
    if let Ok(a) = tcp.local_addr() {
        let _ = local.set(a);
    }
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    match kind {
        Stranger::Silent => until_closed(&mut tcp, &mut release).await,
        Stranger::HalfHello => {
            // A TLS handshake record header announcing 512 bytes, and 4 of them.
            let _ = tcp
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                .await;
            until_closed(&mut tcp, &mut release).await
        }
        Stranger::NoCertificate | Stranger::ForeignCertificate => {
            let connector = if matches!(kind, Stranger::NoCertificate) {
                none
            } else {
                foreign
            };
            match connector.connect(name, tcp).await {
                Ok(mut tls) => until_closed(&mut tls, &mut release).await,
                Err(_) => true,
            }
        }
    }
}

/// Send `n` documents from `g22` to `h26` and receive each on `inbox`,
/// checking after each that the hub holds at most `cap` sockets on `port`;
/// returns the most it held.
async fn agency_round(
    g22: &truc_client::Client,
    h26: &truc_client::Client,
    inbox: &mut tonic::Streaming<truc_proto::v1::Delivery>,
    tag: &str,
    n: usize,
    port: u16,
    cap: usize,
) -> usize {
    let mut peak = 0;
    for i in 0..n {
        let id = format!("{tag}/{i}");
        g22.send(sign(g22, header(&[H26], &id), id.as_bytes())).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(10), inbox.message())
            .await
            .expect("delivered within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(document_id(&d), id);
        h26.ack(vec![d.delivery_id]).await.unwrap();
        // The door's count never passes the cap (checked on /metrics);
        // /proc has shown up to 33 more (a loaded CI run) for a moment
        // while thousands of refused sockets were being closed: a refused
        // connection holds its descriptor from accept to close
        // (SECURITY.md, Known limits). Bounded, and far under the
        // open-file limit the cap protects.
        let fds = hub_sockets(port);
        peak = peak.max(fds);
        assert!(fds <= cap + 64, "the hub holds {fds} sockets on its port (cap {cap})");
    }
    peak
}

/// Where the kernel has the hub's side of a stranger's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HubSide {
    /// A socket of this process (the hub accepted it and holds it).
    Held,
    /// Known to the kernel but not (yet) accepted: half open (SYN_RECV,
    /// the hub's SYN-ACK is being retried) or waiting in the accept queue.
    Queued,
    /// Not there at all: the kernel dropped the connection before the hub
    /// could accept it (the accept queue was full when the client's final
    /// ACK came, and the SYN-ACK retries, or a SYN cookie, ran out). The
    /// client believes it is connected; a silent one never learns
    /// otherwise, since nothing it sends could draw a reset.
    Gone,
}

/// The hub's side (local address 127.0.0.1:`port`) of each client address
/// in `clients`, from one reading of /proc/net/tcp.
fn hub_sides(port: u16, clients: &[SocketAddr]) -> Vec<HubSide> {
    let hex = |a: &SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => String::new(),
    };
    let local = format!("0100007F:{port:04X}");
    let mine: HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let rows: BTreeMap<&str, u64> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 9 && f[1] == local).then(|| (f[2], f[9].parse().unwrap_or(0)))
        })
        .collect();
    clients
        .iter()
        .map(|c| match rows.get(hex(c).as_str()) {
            Some(inode) if mine.contains(inode) => HubSide::Held,
            Some(_) => HubSide::Queued,
            None => HubSide::Gone,
        })
        .collect()
}

/// The strangers of one test: their tasks (each reports whether its
/// connection was closed), kinds and client addresses once connected.
struct Strangers {
    tasks: Vec<tokio::task::JoinHandle<bool>>,
    kinds: Vec<Stranger>,
    local: Vec<Arc<std::sync::OnceLock<SocketAddr>>>,
    hub_port: u16,
}

impl Strangers {
    /// Wait until the hub has closed every stranger it ever held: at most
    /// 150 s after the last stranger finished connecting (a connect whose
    /// SYN the kernel dropped, its accept queue full, retries after 1, 3,
    /// 7 and 15 s before the hub can see it, let alone close it; each
    /// stranger gives up connecting after 20 s, and 200 connect at a time,
    /// so the last of `n` has finished within 20 s × n/200). A stranger
    /// whose connection the kernel dropped before the hub could accept it
    /// ([`HubSide::Gone`] on two readings 5 s apart) is not the hub's to
    /// close: it is counted, and reported, as never having reached the hub.
    /// One the hub still holds then fails the test, with what each open
    /// stranger is. Returns (closed, never reached).
    async fn all_closed(self) -> (usize, usize) {
        let n = self.tasks.len();
        let started = tokio::time::Instant::now();
        let connects_end = started + Duration::from_secs(20 * (n as u64).div_ceil(200) + 5);
        let mut until = started + Duration::from_secs(150);
        let mut gone_before: HashSet<usize> = HashSet::new();
        let never_reached = loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let open: Vec<usize> = (0..n).filter(|&i| !self.tasks[i].is_finished()).collect();
            let connected: Vec<(usize, SocketAddr)> =
                open.iter().filter_map(|&i| Some((i, *self.local[i].get()?))).collect();
            if connected.len() < open.len() && tokio::time::Instant::now() < connects_end {
                // Some are still connecting: the hub's 150 s start after them.
                until = until.max(tokio::time::Instant::now() + Duration::from_secs(150));
            }
            let addrs: Vec<SocketAddr> = connected.iter().map(|(_, a)| *a).collect();
            let sides = hub_sides(self.hub_port, &addrs);
            let gone: HashSet<usize> = connected
                .iter()
                .zip(&sides)
                .filter(|(_, s)| **s == HubSide::Gone)
                .map(|((i, _), _)| *i)
                .collect();
            let dropped: HashSet<usize> = gone.intersection(&gone_before).copied().collect();
            if open.iter().all(|i| dropped.contains(i)) {
                break dropped;
            }
            if tokio::time::Instant::now() >= until {
                let mut seen: BTreeMap<String, usize> = BTreeMap::new();
                for ((i, _), side) in connected.iter().zip(&sides) {
                    *seen.entry(format!("{:?} {side:?}", self.kinds[*i])).or_default() += 1;
                }
                let connecting = open.len() - connected.len();
                panic!(
                    "{} of {n} strangers still open 150 s after the last connected: {seen:?} (the hub's side: Held = the hub \
                     keeps it; Queued = not accepted yet), {connecting} still connecting",
                    open.len()
                );
            }
            gone_before = gone;
        };
        if !never_reached.is_empty() {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for i in &never_reached {
                *kinds.entry(format!("{:?}", self.kinds[*i])).or_default() += 1;
            }
            eprintln!("dropped by the kernel before the hub could accept them, by kind: {kinds:?}");
        }
        let mut closed = 0;
        for (i, t) in self.tasks.into_iter().enumerate() {
            if never_reached.contains(&i) {
                t.abort();
            } else {
                closed += usize::from(t.await.unwrap());
            }
        }
        assert_eq!(
            closed + never_reached.len(),
            n,
            "every stranger the hub held was closed by it"
        );
        (closed, never_reached.len())
    }
}

/// A hub with the admin listener and `f`'s limits, its gRPC port, and
/// G22 and H26 connected (H26 following its inbox) before any stranger.
async fn hub_with_agencies(
    f: impl FnOnce(&mut truc_hub::Config),
) -> (
    TestHub,
    u16,
    truc_client::Client,
    truc_client::Client,
    tonic::Streaming<truc_proto::v1::Delivery>,
) {
    let hub = TestHub::start_with(|c| {
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        f(c)
    })
    .await;
    let port = hub.addr.parse::<SocketAddr>().unwrap().port();
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let inbox = h26.receive(16, true).await.unwrap();
    (hub, port, g22, h26, inbox)
}

/// `n` strangers of `kinds` (in turn), the i-th from 127.0.0.`from(i)`.
fn strangers(
    hub: &TestHub,
    n: usize,
    kinds: &[Stranger],
    from: impl Fn(usize) -> u8,
    release: &watch::Receiver<bool>,
) -> Strangers {
    let none = tls_client(hub, None);
    let other = TestPki::new();
    let foreign = tls_client(hub, Some(&identity(&other.agency_dir(G22))));
    let hub_addr: SocketAddr = hub.addr.parse().unwrap();
    let connecting = Arc::new(tokio::sync::Semaphore::new(200));
    let kinds: Vec<Stranger> = (0..n).map(|i| kinds[i % kinds.len()]).collect();
    let local: Vec<_> = (0..n).map(|_| Arc::new(std::sync::OnceLock::new())).collect();
    let tasks = (0..n)
        .map(|i| {
            tokio::spawn(stranger(
                kinds[i],
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, from(i))),
                hub_addr,
                (none.clone(), foreign.clone()),
                connecting.clone(),
                local[i].clone(),
                release.clone(),
            ))
        })
        .collect();
    Strangers {
        tasks,
        kinds,
        local,
        hub_port: hub_addr.port(),
    }
}

/// These tests hold thousands of sockets each and count the hub's: run
/// them one after another, not against each other on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_strangers_are_held_to_the_caps_while_an_agency_sends_and_receives() {
    let _one = ONE_AT_A_TIME.lock().await;
    let nofile = raise_nofile();
    // Each stranger is a descriptor here, and at most one at the hub.
    let n: usize = 2000.min((nofile as usize).saturating_sub(1000) / 2);
    assert!(n >= 1000, "open-file limit {nofile} too low for this test");
    const CAP: u32 = 300;
    let (hub, port, g22, h26, mut inbox) = hub_with_agencies(|c| {
        c.limits.max_connections = CAP;
        c.limits.max_connections_per_address = 100;
        c.limits.max_handshakes = 1000;
    })
    .await;
    let legit = hub_sockets(port);

    // Four kinds: TCP only and silent; half a ClientHello; TLS without a
    // certificate; TLS with another CA's certificate. Half of them from
    // one address (its cap), the rest from twenty (the total cap).
    let (release_tx, release) = watch::channel(false);
    let kinds = [
        Stranger::Silent,
        Stranger::HalfHello,
        Stranger::NoCertificate,
        Stranger::ForeignCertificate,
    ];
    let strangers = strangers(
        &hub,
        n,
        &kinds,
        |i| if i % 8 < 4 { 2 } else { 3 + (i % 20) as u8 },
        &release,
    );
    eventually("the strangers to reach the caps", || async {
        let m = metrics(&hub).await;
        metric(&m, "truc_connections_refused_total", &[("cap", "total")]) > 0.0
            && metric(&m, "truc_connections_refused_total", &[("cap", "per_address")]) > 0.0
    })
    .await;
    let peak = agency_round(&g22, &h26, &mut inbox, "flood", 40, port, CAP as usize).await;
    let m = metrics(&hub).await;
    assert!(metric(&m, "truc_connections_open", &[]) <= f64::from(CAP));
    assert!(metric(&m, "truc_connections_busiest_address", &[]) <= 100.0);

    // None of them is kept: those without an acceptable certificate get
    // UNAUTHENTICATED and 5 s at most, the others their handshake time.
    let (closed, never_reached) = strangers.all_closed().await;
    drop(release_tx);
    let m = metrics(&hub).await;
    let count = |name: &str, k: &str, v: &str| metric(&m, name, &[(k, v)]);
    for reason in ["no_certificate", "certificate_refused", "handshake_timeout"] {
        assert!(
            count("truc_connections_closed_total", "reason", reason) > 0.0,
            "none closed for {reason}"
        );
    }
    eprintln!(
        "{n} strangers ({closed} closed, {never_reached} dropped by the kernel before the hub could accept them); \
         hub sockets on its port: {legit} before, peak {peak}, cap {CAP}; refused at the caps: {} total, {} per address; closed: {} without a certificate, {} refused, {} handshake timeouts",
        count("truc_connections_refused_total", "cap", "total"),
        count("truc_connections_refused_total", "cap", "per_address"),
        count("truc_connections_closed_total", "reason", "no_certificate"),
        count("truc_connections_closed_total", "reason", "certificate_refused"),
        count("truc_connections_closed_total", "reason", "handshake_timeout"),
    );
    // The door is open again: a new connection works.
    eventually("the strangers' sockets to be gone", || async {
        hub_sockets(port) <= legit + 2
    })
    .await;
    let again = hub.connect(&hub.pki.agency_dir(G22)).await;
    again
        .send(sign(&again, header(&[H26], "after"), b"after"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshakes_beyond_the_cap_are_closed_at_once_and_established_agencies_carry_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    raise_nofile();
    let (hub, port, g22, h26, mut inbox) = hub_with_agencies(|c| {
        c.limits.max_handshakes = 50;
        c.limits.handshake_timeout_ms = 2000;
    })
    .await;
    let legit = hub_sockets(port);
    let (release_tx, release) = watch::channel(false);
    // 200: four times the cap. (400 on a loaded 2-core CI machine made
    // the kernel drop SYNs faster than the hub accepted, and a dropped
    // connect retries for minutes before it reaches the hub at all.)
    let strangers = strangers(
        &hub,
        200,
        &[Stranger::Silent, Stranger::HalfHello],
        |i| 2 + (i % 20) as u8,
        &release,
    );
    eventually("the handshake cap to be reached", || async {
        let m = metrics(&hub).await;
        metric(&m, "truc_connections_refused_total", &[("cap", "handshakes")]) > 0.0
    })
    .await;
    let m = metrics(&hub).await;
    assert!(metric(&m, "truc_tls_handshakes_in_progress", &[]) <= 50.0);
    // The 150 over the cap were closed at once, not queued: the hub holds
    // only the 50 (and the agencies). Counted at the hub, not by the
    // strangers: under load some of them are still retrying their connect
    // or were dropped by the kernel before the hub could see them.
    eventually("the hub to hold only the handshakes within the cap", || async {
        hub_sockets(port) <= legit + 50
    })
    .await;
    agency_round(&g22, &h26, &mut inbox, "slow", 10, port, 4096).await;
    // Closed at the end of their handshake time.
    let (_, never_reached) = strangers.all_closed().await;
    eprintln!("200 strangers, {never_reached} dropped by the kernel before the hub could accept them");
    drop(release_tx);
    let m = metrics(&hub).await;
    assert!(metric(&m, "truc_connections_closed_total", &[("reason", "handshake_timeout")]) >= 1.0);
    let again = hub.connect(&hub.pki.agency_dir(G22)).await;
    again
        .send(sign(&again, header(&[H26], "after"), b"after"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_authenticated_connections_time_out_but_a_quiet_receive_stream_stays() {
    let _one = ONE_AT_A_TIME.lock().await;
    raise_nofile();
    const IDLE: u64 = 2000;
    let hub = TestHub::start_with(|c| {
        c.limits.idle_connection_timeout_ms = IDLE;
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let port = hub.addr.parse::<SocketAddr>().unwrap().port();
    hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    // A follower that receives nothing for longer than the idle timeout.
    let mut inbox = h26.receive(4, true).await.unwrap();
    let started = tokio::time::Instant::now();

    // 500 authenticated connections, each makes one call and goes quiet.
    let id = identity(&hub.pki.agency_dir(G22));
    let mut channels = Vec::new();
    for _ in 0..500 {
        let ch = hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap();
        channels.push(ch);
    }
    eprintln!("{} of the 500 still open when the last was made", hub_sockets(port));
    eventually("500 idle connections to be closed by the hub", || async {
        let m = metrics(&hub).await;
        metric(&m, "truc_connections_closed_total", &[("reason", "idle")]) >= 500.0
    })
    .await;
    eventually("their sockets to be gone", || async { hub_sockets(port) <= 2 }).await;
    let m = metrics(&hub).await;
    assert!(metric(&m, "truc_connections_open", &[]) <= 2.0);

    // The follower's connection outlives two idle timeouts (the point of
    // the wait) and still delivers.
    tokio::time::sleep_until(started + Duration::from_millis(2 * IDLE)).await;
    let g22 = hub.connect(&hub.pki.agency_dir(G22)).await;
    g22.send(sign(&g22, header(&[H26], "late"), b"late")).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), inbox.message())
        .await
        .expect("delivered on the quiet stream")
        .unwrap()
        .expect("the stream is still open");
    assert_eq!(document_id(&d), "late");
    drop(channels);
}
