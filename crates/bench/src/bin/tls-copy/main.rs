//! `tls-copy`: the baselines of the large-document benchmark
//! (`tests/e2e/large_document.sh --compare`), with the same rustls version
//! and ring provider as the hub, and the same certificates (`truc pki`
//! identity directories).
//!
//! The plain copy: one file over one mutual-TLS connection on loopback; no
//! gRPC, no hashing, no store — just read, encrypt, send, decrypt, write,
//! fsync.
//!
//! ```text
//! tls-copy recv --identity pki/hub --listen 127.0.0.1:0 --out FILE [--port-file F] [--direct]
//! tls-copy send --identity pki/agencies/X --connect 127.0.0.1:PORT FILE
//! ```
//!
//! The verified store-and-forward (`verified.rs`): the floor of what the
//! hub's path must do — the sender hashes and sends, a relay process hashes,
//! writes and fsyncs, then reads back and sends, the recipient hashes,
//! writes and fsyncs; digests checked at both hops.
//!
//! ```text
//! tls-copy --verified --pki PKI --from CODE --to CODE --work DIR [--direct] FILE
//! tls-copy send --verified --identity pki/agencies/X --connect 127.0.0.1:PORT FILE
//! tls-copy relay --identity pki/hub --listen 127.0.0.1:0 --out FILE [--port-file F] [--direct]
//! tls-copy fetch --identity pki/agencies/Y --connect 127.0.0.1:PORT --out FILE [--direct]
//! ```
//!
//! `--verified` runs the other three as processes and prints
//! `verified store-and-forward: N bytes in T s (R MiB/s); upload U s,
//! download D s`.
//!
//! `recv` accepts one connection, writes everything it receives to FILE,
//! fsyncs it, and prints `received N bytes in S s (R MiB/s)` (timed from the
//! accept to the end of the fsync). `send` prints the same for its side.
//! `--direct` writes whole blocks around the page cache (`O_DIRECT`, with
//! `truc-fileio` as the hub and `truc inbox` do); without it the receiver
//! writes through the page cache like any plain copy.
#![forbid(unsafe_code)]

mod verified;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use async_nats::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Bytes per read and write on both sides, as the hub's chunks.
pub(crate) const BUF: usize = 1 << 20;

struct Ident {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    roots: rustls::RootCertStore,
}

fn load(dir: &Path) -> anyhow::Result<Ident> {
    let cert =
        CertificateDer::from_pem_file(dir.join("cert.pem")).with_context(|| format!("{}/cert.pem", dir.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(dir.join("key.pem")).with_context(|| format!("{}/key.pem", dir.display()))?;
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).with_context(|| format!("{}/ca.pem", dir.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).context("ca.pem")?;
    Ok(Ident { cert, key, roots })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs.max(1e-9)
}

/// A server's TLS configuration: `identity`'s certificate, clients must
/// present one from its CA.
pub(crate) fn server_config(identity: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let id = load(identity)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(id.roots), provider())
        .build()
        .context("client verifier")?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert], id.key)
        .context("server certificate")
}

/// A client's TLS configuration as `identity`, and the server name of
/// `connect` (`host:port`).
pub(crate) fn client_config(
    identity: &Path,
    connect: &str,
) -> anyhow::Result<(rustls::ClientConfig, ServerName<'static>)> {
    let id = load(identity)?;
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(id.roots)
        .with_client_auth_cert(vec![id.cert], id.key)
        .context("client certificate")?;
    let host = connect.rsplit_once(':').map(|(h, _)| h).unwrap_or(connect);
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
    Ok((cfg, name))
}

/// Write the listener's port to `port_file`, whole then renamed: a poller
/// never sees half a number.
pub(crate) fn write_port(listener: &TcpListener, port_file: Option<&Path>) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    if let Some(f) = port_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("{port}\n"))?;
        std::fs::rename(&tmp, f)?;
    }
    Ok(())
}

/// A small file's text, for error messages.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

fn recv(identity: &Path, listen: &str, out: &Path, port_file: Option<&Path>, direct: bool) -> anyhow::Result<()> {
    let cfg = server_config(identity)?;
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    write_port(&listener, port_file)?;
    let (tcp, _) = listener.accept()?;
    let started = Instant::now();
    let conn = rustls::ServerConnection::new(Arc::new(cfg))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut seq = direct.then(|| truc_fileio::SeqWriter::new(file.try_clone().expect("file handle"), out, 0));
    let mut buf = vec![0u8; BUF];
    let mut pending = 0usize;
    let mut total = 0u64;
    loop {
        let n = tls.read(&mut buf[pending..]).context("TLS read")?;
        if n == 0 {
            break; // close_notify: a clean end
        }
        pending += n;
        total += n as u64;
        if pending == BUF {
            match &mut seq {
                Some(w) => w.write(&buf)?,
                None => file.write_all(&buf)?,
            }
            pending = 0;
        }
    }
    match &mut seq {
        Some(w) => {
            w.write(&buf[..pending])?;
            w.finish()?;
        }
        None => file.write_all(&buf[..pending])?,
    }
    file.sync_all()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "received {total} bytes in {secs:.3} s ({:.1} MiB/s)",
        mib_s(total, secs)
    );
    Ok(())
}

/// A TLS connection to `connect` (`host:port`) as `identity`.
pub(crate) fn dial(
    identity: &Path,
    connect: &str,
) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let (cfg, name) = client_config(identity, connect)?;
    let tcp = TcpStream::connect(connect).with_context(|| format!("connecting to {connect}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn send(identity: &Path, connect: &str, path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tls = dial(identity, connect)?;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n]).context("TLS write")?;
        total += n as u64;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    tls.sock.shutdown(std::net::Shutdown::Write)?;
    // Wait for the receiver to close its side, so the copy is over.
    let mut rest = Vec::new();
    let _ = tls.sock.read_to_end(&mut rest);
    let secs = started.elapsed().as_secs_f64();
    println!("sent {total} bytes in {secs:.3} s ({:.1} MiB/s)", mib_s(total, secs));
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: tls-copy recv --identity DIR --listen ADDR --out FILE [--port-file FILE] [--direct]
       tls-copy send [--verified] --identity DIR --connect ADDR FILE
       tls-copy relay --identity DIR --listen ADDR --out FILE [--port-file FILE] [--direct]
       tls-copy fetch --identity DIR --connect ADDR --out FILE [--direct]
       tls-copy --verified --pki DIR --from CODE --to CODE --work DIR [--direct] FILE"
    );
    std::process::exit(64)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    // `--verified` first: the whole store-and-forward, timed.
    let mut mode = match args.peek().map(String::as_str) {
        Some("--verified") => "verified".to_string(),
        _ => args.next().unwrap_or_else(|| usage()),
    };
    let (mut identity, mut listen, mut connect, mut out, mut port_file, mut file) =
        (None, None, None, None, None, None::<PathBuf>);
    let (mut pki, mut from, mut to, mut work) = (None, None, None, None);
    let (mut direct, mut verified) = (false, false);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--identity" => identity = Some(PathBuf::from(val())),
            "--listen" => listen = Some(val()),
            "--connect" => connect = Some(val()),
            "--out" => out = Some(PathBuf::from(val())),
            "--port-file" => port_file = Some(PathBuf::from(val())),
            "--pki" => pki = Some(PathBuf::from(val())),
            "--from" => from = Some(val()),
            "--to" => to = Some(val()),
            "--work" => work = Some(PathBuf::from(val())),
            "--direct" => direct = true,
            "--verified" => verified = true,
            s if !s.starts_with('-') && file.is_none() => file = Some(PathBuf::from(s)),
            _ => usage(),
        }
    }
    if mode == "send" && verified {
        mode = "send-verified".into();
    }
    if mode == "verified" {
        let (Some(pki), Some(from), Some(to), Some(work), Some(file)) = (pki, from, to, work, file) else {
            usage()
        };
        let plan = verified::Plan {
            pki,
            from,
            to,
            work,
            direct,
            file,
        };
        return verified::run(&plan);
    }
    let Some(identity) = identity else { usage() };
    match (mode.as_str(), listen, connect, out, file) {
        ("recv", Some(listen), _, Some(out), _) => recv(&identity, &listen, &out, port_file.as_deref(), direct),
        ("send", _, Some(connect), _, Some(file)) => send(&identity, &connect, &file),
        ("send-verified", _, Some(connect), _, Some(file)) => verified::send(&identity, &connect, &file),
        ("relay", Some(listen), _, Some(out), _) => {
            verified::relay(&identity, &listen, port_file.as_deref(), &out, direct)
        }
        ("fetch", _, Some(connect), Some(out), _) => verified::fetch(&identity, &connect, &out, direct),
        ("recv" | "send" | "send-verified" | "relay" | "fetch", ..) => usage(),
        _ => bail!("unknown mode {mode:?}: recv, send, relay, fetch or --verified"),
    }
}
