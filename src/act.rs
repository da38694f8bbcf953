//! Acting on what kwatch finds: destroy sockets, or turn keepalive on in running programs.

use crate::cli::Args;

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Which sockets, in the filter syntax of the live view: `port:443 state:close-wait pid:1234 stuck`.
    #[arg(required = true, value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KeepaliveArgs {
    /// Which sockets, in the filter syntax of the live view.
    #[arg(required = true, value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn kill(_kill: &KillArgs, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("kwatch kill is not available in this build")
}

pub fn keepalive(_ka: &KeepaliveArgs, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("kwatch keepalive is not available in this build")
}
