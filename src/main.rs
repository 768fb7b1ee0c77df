use clap::Parser;
use kube_notify::cli::{Cli, Command};
use kube_notify::launch;

/// mimalloc, built with transparent huge pages off (`no_thp`): on a host
/// with THP `always`, its arenas otherwise fault in 2 MiB pages, and an idle
/// operator with 1,000 integrations held 50 MiB instead of 29 MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => launch::run(*args).await,
        Command::Standalone(args) => launch::standalone(*args).await,
        Command::Get(args) => launch::get(args),
        Command::Sidecar(args) => launch::sidecar(args).await,
        Command::Send(args) => launch::send(*args).await,
        Command::Test(args) => launch::test(args).await,
        Command::Crd => launch::crds(),
    }
}
