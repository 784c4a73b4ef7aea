//! teacher-svc binary: parse the configuration, then `rankdistill-serving` binds, prints the
//! bound addresses and runs the server until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use rankdistill_teacher::config::Config;
use rankdistill_teacher::server;

fn main() -> ExitCode {
    let config = Config::parse();
    let args = config.server.args().clone();
    rankdistill_serving::process::main("teacher-svc", &args, |listeners, shutdown| {
        server::run(config, listeners, shutdown)
    })
}
