//! `muster serve`.

use crate::App;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<u8> {
    let app = App::build(config).await?;
    wait_for_signal().await;
    tracing::info!("stopping: finishing work in flight");
    app.shutdown().await;
    Ok(0)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
