//! End-to-end tests: the real `hms-host` binary, real components, real HTTP.

mod audit;
mod cluster;
mod cluster_calls;
mod cluster_deploys;
mod cluster_import;
mod common;
mod console;
mod core_api;
mod durability;
mod hot_swap;
mod isolation;
mod lifecycle;
mod loading;
mod metrics;
mod polyglot;
mod sandbox;
mod seed_flow;
mod skeletons;
mod store;
mod token_attacks;
mod traces;
mod watch;
