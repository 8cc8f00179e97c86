//! All integration tests, built as one binary. They talk to the real simulator over real HTTP
//! on `127.0.0.1:0`.

mod command_line;
mod common;
mod credentials;
mod fuzz;
mod habits;
mod hostile;
mod invariant;
mod lookup;
mod pacing;
mod preflight;
mod property;
mod record;
mod run;
mod sim_state;
mod simulator;
mod unattended;
mod workbooks;
