//! tokio-echo: the raw-tokio echo server that the echo benchmarks use as their ceiling.
//! A current-thread runtime, one task per connection, a 64 KiB buffer, read then write_all,
//! TCP_NODELAY: the least a tokio program can do per request.
//! With `--udp`, one UDP socket: `recv_from` then `send_to` each datagram back.
//! Usage: `tokio-echo HOST PORT`, `tokio-echo --unix PATH` (a Unix stream socket) or
//! `tokio-echo --udp HOST PORT`.

use std::process::ExitCode;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};

/// Per-connection read buffer size.
const BUF_SIZE: usize = 64 * 1024;

/// Echoes everything `stream` sends until it closes or fails.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Accepts TCP connections forever, spawning an echo task for each.
async fn serve_tcp(listener: TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Running out of descriptors or a peer resetting before accept is not fatal.
            Err(e) => {
                eprintln!("tokio-echo: accept failed: {e}");
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("tokio-echo: cannot set TCP_NODELAY: {e}");
        }
        tokio::spawn(echo(stream));
    }
}

/// Accepts Unix-socket connections forever, spawning an echo task for each.
async fn serve_unix(listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(e) => eprintln!("tokio-echo: accept failed: {e}"),
        }
    }
}

/// Echoes every datagram back to its sender, forever.
async fn serve_udp(sock: UdpSocket) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await?;
        // A datagram that cannot go back (say, ICMP from a vanished client) is dropped.
        let _ = sock.send_to(&buf[..n], from).await;
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio-echo: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (addr, result) = match argv.as_slice() {
        [_, flag, path] if flag == "--unix" => (
            path.clone(),
            rt.block_on(async {
                serve_unix(UnixListener::bind(path)?).await;
                std::io::Result::Ok(())
            }),
        ),
        [_, flag, host, port] if flag == "--udp" => {
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("tokio-echo: invalid port {port:?}");
                return ExitCode::from(2);
            };
            (
                format!("udp:{host}:{port}"),
                rt.block_on(async {
                    serve_udp(UdpSocket::bind((host.as_str(), port)).await?).await
                }),
            )
        }
        [_, host, port] => {
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("tokio-echo: invalid port {port:?}");
                return ExitCode::from(2);
            };
            (
                format!("{host}:{port}"),
                rt.block_on(async {
                    serve_tcp(TcpListener::bind((host.as_str(), port)).await?).await;
                    std::io::Result::Ok(())
                }),
            )
        }
        _ => {
            eprintln!(
                "usage: tokio-echo HOST PORT | tokio-echo --unix PATH | tokio-echo --udp HOST PORT"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-echo: cannot serve on {addr}: {e}");
            ExitCode::from(1)
        }
    }
}
