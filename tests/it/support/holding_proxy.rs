//! A TCP relay in front of a server that the test can make hang: while it
//! holds, what clients send is kept back (and counted), as a server that
//! stopped answering would leave it; released, it all goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct HoldingProxy {
    pub port: u16,
    holding: watch::Sender<bool>,
    held: Arc<AtomicUsize>,
}

impl HoldingProxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (holding, watching) = watch::channel(false);
        let held = Arc::new(AtomicUsize::new(0));
        let counted = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, watching.clone(), counted.clone()));
            }
        });
        Self {
            port,
            holding,
            held,
        }
    }

    pub fn hold(&self) {
        self.held.store(0, Ordering::SeqCst);
        self.holding.send_replace(true);
    }

    pub fn release(&self) {
        self.holding.send_replace(false);
    }

    /// Waits until a client has sent something that is being held.
    pub async fn until_held(&self, deadline: Duration) {
        tokio::time::timeout(deadline, async {
            while self.held.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("a client to send something while the server is held");
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    mut holding: watch::Receiver<bool>,
    held: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if *holding.borrow() {
            held.fetch_add(n, Ordering::SeqCst);
            if holding.wait_for(|h| !*h).await.is_err() {
                break;
            }
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to_server.shutdown().await;
    let _ = answers.await;
}
