//! `muster serve`.

use crate::App;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<u8> {
    let app = App::build(config).await?;
    // Said once at start-up, and by /readyz until it is fixed.
    if let Some(problem) = app.muster.host.write_problem() {
        tracing::error!("the mail host cannot take new mailboxes: {problem}");
    }
    let code = tokio::select! {
        _ = wait_for_signal() => 0,
        problem = store_broken(&app) => {
            tracing::error!("{problem}; exiting so the supervisor restarts Muster once that is mended");
            1
        }
    };
    tracing::info!("stopping: finishing work in flight");
    app.shutdown().await;
    Ok(code)
}

/// Resolves, with what is wrong, when the store refuses writes until
/// reopened, or its file was removed under it.
async fn store_broken(app: &App) -> String {
    loop {
        if let Some(problem) = app.muster.store.problem() {
            return problem;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
