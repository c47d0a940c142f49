//! Black-box tests: the real `hookd` binary, driven over HTTP, delivering to a
//! real sink on loopback. One module per resource or behaviour.

mod support;

mod chaos;
mod tenancy;

mod delivery;
mod egress;
mod environment;
mod mgmt;

mod applications;
mod attempts;
mod auth;
mod backup;
mod batching;
mod checks;
mod cli;
mod cluster;
mod console;
mod control;
mod endpoints;
mod event_types;
mod import_svix;
mod inbound;
mod integrations;
mod lifecycle;
mod listen;
mod logs;
mod mcp;
mod mcp_stdio;
mod messages;
mod oidc;
mod ordering;
mod otel;
mod poller;
mod postgres;
mod schemas;
mod security;
mod settings;
mod shaping;
mod sign;
mod sla;
mod stats;
mod trail;
mod transports;
