//! `kwatch serve`: Prometheus metrics of fresh snapshots over HTTP.

use std::net::SocketAddr;

use crate::cli::Args;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:9813", value_name = "ADDR")]
    pub listen: SocketAddr,
}

pub fn run(_serve: &ServeArgs, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("kwatch serve is not available in this build")
}
