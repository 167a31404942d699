//! One module per command, each with a `run` function.

pub mod completions;
pub mod contexts;
pub mod current;
pub mod login;
pub mod logout;
pub mod refresh;
pub mod rename;
pub mod status;
pub mod switch;
pub mod token;
