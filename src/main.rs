use clap::Parser;
use kube_notify::cli::{Cli, Command};
use kube_notify::launch;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => launch::run(*args).await,
        Command::Standalone(args) => launch::standalone(*args).await,
        Command::Get(args) => launch::get(args),
        Command::Sidecar(args) => launch::sidecar(args).await,
        Command::Crd => launch::crds(),
    }
}
