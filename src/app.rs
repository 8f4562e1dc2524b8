//! A running Muster: the HTTP server and the background workers, started
//! from a configuration. Tests build one on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::service::{Clock, Muster, ServiceError, SystemClock};

pub struct App {
    pub muster: Arc<Muster>,
    /// What the HTTP handlers share (limits, open connections).
    pub http: Arc<crate::http::HttpState>,
    /// The address the server listens on (useful with port 0).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    /// Named `cause`, not `source`: the message already says it, and a
    /// source would be printed a second time after it.
    #[error("cannot listen on {addr}: {cause}; {}", listen_advice(cause))]
    Listen { addr: String, cause: std::io::Error },
}

/// Makes the allocator give large freed blocks back to the system. glibc
/// raises its mmap threshold to the size of the first large block freed,
/// so after one argon2id hash its 19 MiB buffers come from the heap and
/// stay resident; a fixed threshold keeps every block of 128 KiB or more
/// its own mapping, unmapped on free. (musl's allocator already does so.)
pub fn return_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            // glibc's default of 8 arenas per core keeps freed memory in
            // each arena a thread ever touched; one per core holds the load
            // bench's peak 15 MiB lower at the same throughput.
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            libc::mallopt(libc::M_ARENA_MAX, cores as libc::c_int);
        }
    });
}

/// What to do when the listen address cannot be taken.
fn listen_advice(cause: &std::io::Error) -> &'static str {
    match cause.kind() {
        std::io::ErrorKind::AddrInUse => "stop what uses it, or set listen to another port",
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: use a higher port behind a reverse proxy, or grant CAP_NET_BIND_SERVICE"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address: set listen to one of its addresses, or 0.0.0.0"
        }
        _ => "check the listen setting",
    }
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        return_freed_memory();
        let config = Arc::new(config);
        let muster = Arc::new(Muster::open(config.clone(), clock)?);
        muster.recover_redemptions()?;
        let acceptor = TcpListener::bind(config.listen.to_string())
            .into_acceptor()
            .await
            .map_err(|cause| AppError::Listen {
                addr: config.listen.to_string(),
                cause,
            })?;
        // Only once listening: a link printed by a start that then fails
        // would lead nowhere.
        if let Some(link) = muster.setup_link()? {
            // Printed where the operator looks at first start; valid 24 hours,
            // once. The log record leaves the token out: logs get shipped.
            tracing::warn!(
                "no admin account yet: open the setup link printed at start (valid 24 hours, once) or run `muster admin add EMAIL`"
            );
            eprintln!(
                "\nNo admin account yet. Create the first one here (valid 24 hours, once):\n  {link}\n"
            );
        }
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| AppError::Listen {
                addr: config.listen.to_string(),
                cause: std::io::Error::other("no local address"),
            })?;
        let (shutdown, mut stop) = watch::channel(false);
        let worker = crate::mail::worker::spawn(muster.clone(), stop.clone())?;
        let webhooks = crate::webhooks::spawn(muster.clone(), stop.clone());
        let http_state = Arc::new(crate::http::HttpState::new(muster.clone()));
        let routes = crate::http::routes(http_state.clone());
        let upkeep = tokio::spawn(upkeep(muster.clone(), http_state.clone(), stop.clone()));
        let resets = tokio::spawn(reset_requests(muster.clone(), stop.clone()));
        let acceptor = crate::http::timeout::TimeoutAcceptor {
            inner: acceptor,
            limits: config.http.connection_limits(),
            connections: http_state.connections.clone(),
        };
        let server = tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    routes,
                    signal,
                    Some(std::time::Duration::from_secs(10)),
                )
                .await
            {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        tracing::info!(%addr, public_url = %config.public_url, "Muster is listening");
        if config.public_url.is_local() && !config.writes_outbox() {
            tracing::warn!(public_url = %config.public_url, "invites leave this machine with links to it that open nowhere else: set public_url (MUSTER_PUBLIC_URL) to the address people reach Muster at");
        }
        Ok(Self {
            muster,
            http: http_state,
            addr,
            shutdown,
            tasks: vec![server, worker, webhooks, upkeep, resets],
        })
    }

    /// Stops taking requests, lets work in flight finish, and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// The base URL of the running server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Once a minute: mark expired invites, plan the daily digests when
/// their hour has come, settle redemptions a crash interrupted while the
/// mail host was unreadable, and forget idle rate-limit keys.
async fn upkeep(
    muster: Arc<Muster>,
    http: Arc<crate::http::HttpState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let m = muster.clone();
        match tokio::task::spawn_blocking(move || {
            m.purge_expired()?;
            m.plan_digests()?;
            m.retry_recovery()?;
            m.sweep_expired()
        })
        .await
        {
            Ok(Ok(n)) if n > 0 => tracing::info!(expired = n, "marked expired invites"),
            Ok(Err(e)) => tracing::error!(error = %e, "the expiry sweep failed"),
            _ => {}
        }
        http.tidy();
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The work behind "forgot password", after the answer: looks each request
/// up, and queues a reset email for a real account.
async fn reset_requests(muster: Arc<Muster>, mut stop: watch::Receiver<bool>) {
    loop {
        let m = muster.clone();
        match tokio::task::spawn_blocking(move || m.process_reset_requests()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "cannot process password reset requests"),
            Err(e) => tracing::error!(error = %e, "the password reset task failed"),
            Ok(Ok(_)) => {}
        }
        tokio::select! {
            _ = muster.reset_requested.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
