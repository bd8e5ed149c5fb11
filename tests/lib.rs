//! Integration tests: the real resticpilot binary against a real restic, real SQLite files and
//! a real MariaDB server started by the harness. One test binary, a module per feature.

mod harness;
mod mariadb;
mod postgres;
mod servers;

mod backup_mysql;
mod backup_postgres;
mod backup_sqlite;
mod command;
mod config;
mod copy_to;
mod credential_files;
mod daemon;
mod disk_full;
mod excludes;
mod failures;
mod http;
mod incomplete;
mod incremental;
mod inheritance;
mod locks;
mod maintenance;
mod mysql_trust;
mod notify_channels;
mod operator;
mod prune;
mod pushgateway;
mod reflink;
mod remote;
mod report;
mod restic_knobs;
mod restore;
mod retention;
mod staging;
mod untrusted;
mod verify;
