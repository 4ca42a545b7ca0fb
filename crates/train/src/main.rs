//! `fmnist`: train, evaluate and inspect activation functions on Fashion-MNIST.
// The doc comments of the CLI's structs are clap's `--help` text, written for a terminal
// (`runs/<activation>`, `--set compare.seeds=[1]`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // `fmnist eval ... | head` should end quietly like other Unix tools, not panic on EPIPE.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    actlab_train::backend::keep_freed_memory();
    let cli = cli::Cli::parse();
    // On a thread of the kernels' pool: their parallel sections then start without handing
    // the work over to the pool and waking this thread after it.
    let result = actlab_train::backend::in_thread_pool(|| cli.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let stopped = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref(),
                    Some(actlab_train::run::TrainError::Stopped { .. })
                )
            });
            if stopped {
                // Not a failure: the run waits, checkpointed, for the same command again.
                eprintln!("{}", actlab_train::error_chain(error.as_ref()));
                return ExitCode::from(actlab_train::run::EXIT_STOPPED);
            }
            eprintln!("error: {}", actlab_train::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
