//! The account an archive is loaded as. An archive from a snapshot is untrusted, and the SQL
//! it runs during a load (definitions, COPY statements, functions called by index expressions
//! or constraints) runs with the rights of the account that loads it. When the configured
//! account is a superuser or has CREATEROLE, the load runs instead as a temporary LOGIN role
//! with no attribute (`resticpilot_load_<pid>_<n>`) that owns only the scratch database, so
//! the server itself confines what the archive's SQL can do; the role is dropped afterwards,
//! and roles left by a run that was killed are dropped at the next load once expired.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::client::{Conn, QueryError, ident, literal};

/// The prefix of the temporary roles' names.
pub const PREFIX: &str = "resticpilot_load_";

/// How long a temporary role may log in (it logs in once, right after it is made).
const VALID_FOR: Duration = Duration::from_secs(15 * 60);

/// The role a load runs as: the configured account (already unprivileged), or a temporary
/// role.
pub struct LoadRole {
    /// The admin account's name (`current_user`).
    pub admin: String,
    /// Whether the admin account is a superuser.
    pub superuser: bool,
    /// The temporary role, when there is one.
    pub temp: Option<Temp>,
}

pub struct Temp {
    pub name: String,
    /// A connection as the temporary role.
    pub conn: Conn,
    dropped: bool,
}

/// Whether the configured account can create roles (superuser or CREATEROLE), and its name.
fn privileged(conn: &Conn) -> Result<(String, bool, bool), QueryError> {
    let rows = conn.query(
        "postgres",
        "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )?;
    let row = rows.first().cloned().unwrap_or_default();
    let mut cols = row.split('\t');
    let name = cols.next().unwrap_or_default().to_string();
    let sup = cols.next() == Some("t");
    let createrole = cols.next() == Some("t");
    Ok((name, sup, createrole))
}

/// A random password (48 hex digits from the kernel's generator).
fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    std::io::Read::read_exact(&mut f, &mut bytes)
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Drops the temporary roles whose validity ended (left by a run that was killed): the
/// scratch databases they own first (named as resticpilot names them) (only when nobody is connected to them), then what they
/// own in `postgres`, then the role. Each is logged; a role that cannot be dropped yet is
/// left for the next time.
pub fn drop_stale(conn: &Conn) {
    let rows = match conn.query(
        "postgres",
        &format!(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, {}) AND rolvaliduntil < now()",
            literal(PREFIX)
        ),
    ) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("cannot list stale {PREFIX}* roles: {e}");
            return;
        }
    };
    for role in rows {
        let dbs = conn
            .query(
                "postgres",
                &format!(
                    "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = {})",
                    literal(&role)
                ),
            )
            .unwrap_or_default();
        for db in dbs
            .iter()
            .filter(|db| crate::source::is_scratch_database(db))
        {
            // Without FORCE: a database someone still uses is left alone.
            if let Err(e) = conn.query("postgres", &format!("DROP DATABASE {}", ident(db))) {
                tracing::warn!("stale role {role}: cannot drop its scratch database {db}: {e}");
            }
        }
        let dropped = conn.query(
            "postgres",
            &format!("DROP OWNED BY {0}; DROP ROLE {0}", ident(&role)),
        );
        match dropped {
            Ok(_) => tracing::warn!(
                "dropped the expired temporary load role {role} (left by a restore or verify that did not finish)"
            ),
            Err(e) => tracing::warn!("cannot drop the expired temporary load role {role}: {e}"),
        }
    }
}

impl LoadRole {
    /// The role to load as: a new temporary role when the configured account is a superuser
    /// or has CREATEROLE, else the configured account itself.
    ///
    /// Fails when the account cannot be inspected or the role cannot be made.
    pub fn choose(conn: &Conn) -> Result<LoadRole, String> {
        drop_stale(conn);
        let (admin, sup, createrole) = privileged(conn)
            .map_err(|e| format!("cannot read the rights of the configured account: {e}"))?;
        if !sup && !createrole {
            tracing::info!(
                "loading the archive as {admin}: it is neither superuser nor CREATEROLE, so the server already confines it"
            );
            return Ok(LoadRole {
                admin,
                superuser: false,
                temp: None,
            });
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let password = random_password()?;
        // The statement holds the password: a superuser keeps it out of the server's log
        // whatever `log_statement` says (a CREATEROLE account may not change these).
        let quiet = if sup {
            "SET log_statement = 'none'; SET log_min_duration_statement = -1; SET log_min_error_statement = 'panic';\n"
        } else {
            ""
        };
        let sql = format!(
            "{quiet}CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 PASSWORD {} VALID UNTIL {}",
            ident(&name),
            literal(&password),
            literal(
                &(chrono::Utc::now() + VALID_FOR)
                    .format("%Y-%m-%d %H:%M:%S+00")
                    .to_string()
            )
        );
        conn.query_secret("postgres", &sql, &password)
            .map_err(|e| format!("cannot create the temporary load role {name}: {e}"))?;
        // A CREATEROLE account that is not a superuser must be a member of a role to make it
        // the owner of a database.
        if !sup
            && let Err(e) = conn.query(
                "postgres",
                &format!("GRANT {} TO {}", ident(&name), ident(&admin)),
            )
        {
            let _ = conn.query("postgres", &format!("DROP ROLE {}", ident(&name)));
            return Err(format!(
                "cannot make {admin} a member of the temporary load role {name}: {e}"
            ));
        }
        tracing::info!(
            "loading the archive as the temporary role {name} (the configured account {admin} is {}): the server confines the archive's SQL to the scratch database",
            if sup { "a superuser" } else { "CREATEROLE" }
        );
        let temp_conn = conn.as_login(&name, &password)?;
        Ok(LoadRole {
            admin,
            superuser: sup,
            temp: Some(Temp {
                name,
                conn: temp_conn,
                dropped: false,
            }),
        })
    }

    /// The connection that loads: the temporary role's, or `admin`.
    pub fn conn<'a>(&'a self, admin: &'a Conn) -> &'a Conn {
        self.temp.as_ref().map(|t| &t.conn).unwrap_or(admin)
    }

    /// Checks that the temporary role can log in to `db`, before anything is loaded.
    ///
    /// Fails naming pg_hba.conf and the ways out.
    pub fn check_login(&self, db: &str) -> Result<(), String> {
        let Some(temp) = &self.temp else {
            return Ok(());
        };
        temp.conn.query(db, "SELECT 1").map(|_| ()).map_err(|e| {
            format!(
                "the archive is loaded as a temporary unprivileged role ({name}), because the configured account {admin} is privileged and SQL from a snapshot is untrusted, but that role cannot log in to {server}: {e}. \
                 Fix: let roles {PREFIX}* log in with a password where resticpilot connects (a pg_hba.conf line such as `host all all 127.0.0.1/32 scram-sha-256`, or on PostgreSQL 16 and later one for these roles alone, user `/^{PREFIX}`; a socket with only `peer` cannot serve them; then reload the server), \
                 or configure a `user` that is neither superuser nor CREATEROLE and can create databases; nothing was loaded",
                name = temp.name,
                admin = self.admin,
                server = temp.conn.source.server(),
            )
        })
    }

    /// After the load: `db` no longer holds settings of its own (the loaded SQL could set
    /// some on the database it owned), what the temporary role owns in `db` goes to the
    /// admin account (`db` itself too), and the role is dropped.
    ///
    /// Fails when the ownership cannot be moved or the role dropped.
    pub fn hand_over(&mut self, admin: &Conn, db: &str) -> Result<(), String> {
        let Some(temp) = &mut self.temp else {
            return Ok(());
        };
        let role = ident(&temp.name);
        let me = ident(&self.admin);
        admin
            .query(
                "postgres",
                &format!(
                    "ALTER DATABASE {0} RESET ALL; ALTER DATABASE {0} OWNER TO {me}",
                    ident(db)
                ),
            )
            .map_err(|e| format!("cannot take over the scratch database {db}: {e}"))?;
        admin
            .query(
                db,
                &format!("REASSIGN OWNED BY {role} TO {me}; DROP OWNED BY {role}"),
            )
            .map_err(|e| format!("cannot take over what {} loaded: {e}", temp.name))?;
        let name = temp.name.clone();
        self.drop_role(admin)
            .map_err(|e| format!("cannot drop the temporary load role {name}: {e}"))
    }

    /// Drops the temporary role (what it still owns in `postgres` first). Done on every path;
    /// a second call does nothing.
    pub fn drop_role(&mut self, admin: &Conn) -> Result<(), QueryError> {
        let Some(temp) = &mut self.temp else {
            return Ok(());
        };
        if temp.dropped {
            return Ok(());
        }
        let role = ident(&temp.name);
        admin.cleanup_query(
            "postgres",
            &format!("DROP OWNED BY {role}; DROP ROLE {role}"),
        )?;
        temp.dropped = true;
        Ok(())
    }
}
