//! The check of a MySQL dump from a snapshot before it reaches a server, and the rewrite of
//! its database names while it streams into the client.
//!
//! A dump in a snapshot is untrusted input: anyone who can write to the repository can plant
//! one. This is a lexer of the SQL that `mariadb-dump` writes, as the `mariadb` client and the
//! server read it: quotes, backticks, `--`/`#`/`/* */` comments, executable `/*!NNNNN ... */`
//! comments (read as code, since the server runs them), and `DELIMITER` changes around
//! triggers and routines. Statements are cut where the client cuts them and checked one by
//! one; a dump is refused, naming the line, when it:
//!
//! - switches to, creates, alters or drops a database other than the ones the manifest lists
//!   (`USE`, in any case or spacing, `CREATE DATABASE`, ...), or names another database that
//!   exists on the server, or a system schema, as a qualifier (`orig.t`, `` `mysql`.`user` ``);
//! - holds a statement a dump does not hold (only `SET`, `USE`, `CREATE`/`ALTER`/`DROP` of
//!   tables, views, triggers, routines, events, sequences and the dump's own database,
//!   `INSERT`/`REPLACE`, `LOCK`/`UNLOCK TABLES`, `DO`/`SELECT` (sequences) and transaction
//!   control are), or anywhere, trigger and routine bodies included, a word that reaches
//!   beyond the database: accounts and rights (`GRANT`, `CREATE USER`, `SET PASSWORD`),
//!   dynamic SQL (`PREPARE`, `EXECUTE`), the server's files (`INTO OUTFILE`, `LOAD DATA`,
//!   `LOAD_FILE`, `DATA DIRECTORY`, engines CONNECT/FEDERATED/SPIDER), global settings,
//!   `KILL`, `SHUTDOWN`, plugins and replication;
//! - changes how the rest would be read: a `sql_mode` with `ANSI_QUOTES` or
//!   `NO_BACKSLASH_ESCAPES` (or a mode that implies them), a client character set in which a
//!   backslash can hide inside a multi-byte character, a client command (a backslash outside
//!   a string: `\!`, `\u`, `\C`...);
//! - or lacks its `-- Dump completed` trailer.
//!
//! Because every statement and every body is checked, a `DEFINER` (a trigger or routine
//! running as another account, root included) cannot reach outside the database either. The
//! same scanner rewrites the dump's database names (in `USE`, `CREATE DATABASE` and
//! qualifiers) to the target's while loading.

use std::collections::BTreeSet;
use std::io::{self, Write};

use super::restore::quote_ident;

/// The largest statement held in memory at once (a dump's statements are bounded by the
/// server's max_allowed_packet, 16 MiB by default, at most 1 GiB).
const MAX_STATEMENT: usize = 1 << 30;

/// How much of a string literal's value is kept (the checks read only short values, such as
/// a `sql_mode`; rows are not copied).
const MAX_KEPT: usize = 512;

/// Schemas of the server itself: never a qualifier in a dump.
const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// Client character sets in which every byte below 0x80 is itself (no backslash can hide in
/// a multi-byte character).
const SAFE_CHARSETS: [&str; 7] = [
    "utf8mb4", "utf8mb3", "utf8", "latin1", "ascii", "binary", "default",
];

/// sql_mode flags that do not change how a statement is cut into tokens.
const SAFE_MODES: [&str; 24] = [
    "",
    "NO_AUTO_VALUE_ON_ZERO",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "NO_AUTO_CREATE_USER",
    "NO_ENGINE_SUBSTITUTION",
    "NO_ZERO_DATE",
    "NO_ZERO_IN_DATE",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "PAD_CHAR_TO_FULL_LENGTH",
    "IGNORE_SPACE",
    "HIGH_NOT_PRECEDENCE",
    "PIPES_AS_CONCAT",
    "REAL_AS_FLOAT",
    "NO_FIELD_OPTIONS",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "TRADITIONAL",
    "SIMULTANEOUS_ASSIGNMENT",
    "TIME_ROUND_FRACTIONAL",
    "EMPTY_STRING_IS_NULL",
];

/// Session variables a dump sets.
const SESSION_VARS: [&str; 16] = [
    "character_set_client",
    "character_set_results",
    "character_set_connection",
    "collation_connection",
    "time_zone",
    "sql_mode",
    "foreign_key_checks",
    "unique_checks",
    "sql_notes",
    "autocommit",
    "check_constraint_checks",
    "sql_quote_show_create",
    "system_versioning_insert_history",
    "timestamp",
    "sql_log_bin",
    // Which notes the session shows (mariadb-dump 10.6.16 and later set it to 0 for the load).
    "note_verbosity",
];

/// Words that reach beyond the database being restored, wherever they stand.
const FORBIDDEN_WORDS: [&str; 17] = [
    "GRANT",
    "REVOKE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "SHUTDOWN",
    "KILL",
    "INSTALL",
    "UNINSTALL",
    "FLUSH",
    "PURGE",
    "BINLOG",
    "SONAME",
    "OUTFILE",
    "DUMPFILE",
    "LOAD_FILE",
    "DIRECTORY",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A bare word (keyword or unquoted identifier), upper-cased.
    Word,
    /// A backtick-quoted identifier (its value).
    Ident,
    /// A string literal (its value, the first [`MAX_KEPT`] bytes).
    Str,
    Num,
    /// `@name`.
    Var,
    /// `@@name`, lower-cased.
    SysVar,
    Punct(u8),
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    text: String,
    /// A bare word as written (`text` is upper-cased).
    raw: String,
    start: usize,
    end: usize,
}

impl Tok {
    fn is_word(&self, w: &str) -> bool {
        self.kind == Kind::Word && self.text == w
    }

    fn is_name(&self) -> bool {
        matches!(self.kind, Kind::Word | Kind::Ident)
    }

    fn is_punct(&self, c: u8) -> bool {
        self.kind == Kind::Punct(c)
    }
}

/// Where the splitter is inside the text, carried from line to line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Code,
    Str(u8),
    Ident,
    Comment,
}

/// A dump refused by the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The streaming check and rewrite of one dump. Feed it every line with [`Scanner::line`],
/// then call [`Scanner::finish`].
#[derive(Debug)]
pub struct Scanner {
    /// Database in the dump -> database to load into.
    map: Vec<(String, String)>,
    /// Other databases on the server (lower-cased): never a qualifier.
    others: BTreeSet<String>,
    delimiter: Vec<u8>,
    at: At,
    /// Inside an executable comment.
    exec: bool,
    /// The statement so far (raw bytes, comments included).
    stmt: Vec<u8>,
    stmt_exec: bool,
    stmt_line: u64,
    /// Whether `stmt` holds anything but blanks and comments.
    stmt_code: bool,
    line_no: u64,
    safe_mode_vars: BTreeSet<String>,
    safe_charset_vars: BTreeSet<String>,
    current: Option<String>,
    /// `target.table` for every CREATE TABLE seen.
    pub tables: Vec<(String, String)>,
    /// The last non-blank line was the completion trailer.
    pub trailer: bool,
    pub bytes: u64,
    /// The accounts the dump's triggers, views, routines and events run as.
    pub definers: BTreeSet<String>,
}

impl Scanner {
    /// A scanner for a dump of the databases `map` lists (each to be loaded into its
    /// target), on a server that also holds `others`.
    pub fn new(map: Vec<(String, String)>, others: &[String]) -> Scanner {
        let mut other: BTreeSet<String> = others.iter().map(|o| o.to_lowercase()).collect();
        for (from, to) in &map {
            other.remove(&from.to_lowercase());
            other.remove(&to.to_lowercase());
        }
        other.extend(SYSTEM_SCHEMAS.iter().map(|s| s.to_string()));
        Scanner {
            map,
            others: other,
            delimiter: b";".to_vec(),
            at: At::Code,
            exec: false,
            stmt: Vec::new(),
            stmt_exec: false,
            stmt_line: 1,
            stmt_code: false,
            line_no: 0,
            safe_mode_vars: BTreeSet::new(),
            safe_charset_vars: BTreeSet::new(),
            current: None,
            tables: Vec::new(),
            trailer: false,
            bytes: 0,
            definers: BTreeSet::new(),
        }
    }

    fn refuse(&self, line: u64, reason: impl Into<String>) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            Refusal {
                line,
                reason: reason.into(),
            }
            .to_string(),
        )
    }

    /// Checks one line (with its line break) and writes it to `out`, database names mapped.
    /// Complete statements are written when their delimiter arrives.
    ///
    /// Fails when `out` fails, or with [`io::ErrorKind::InvalidData`] and the reason when the
    /// dump breaks a rule (nothing of that statement is written).
    pub fn line(&mut self, line: &[u8], out: &mut dyn Write) -> io::Result<()> {
        self.line_no += 1;
        self.bytes += line.len() as u64;
        let blank = line.iter().all(u8::is_ascii_whitespace);
        let at_start = self.at == At::Code && !self.exec && !self.stmt_code;
        if at_start && !blank {
            self.trailer = line.starts_with(b"-- Dump completed");
        } else if !blank {
            self.trailer = false;
        }
        // mariadb-dump's first line turns on the client's sandbox mode; the server reads it
        // as a comment (version 99.99.99). Passed on as it is.
        if self.line_no == 1 && line.trim_ascii_end() == b"/*M!999999\\- enable the sandbox mode */"
        {
            return out.write_all(line);
        }
        self.segment(line, out)
    }

    /// Scans `seg` (a line, or what follows a delimiter on it).
    fn segment(&mut self, mut seg: &[u8], out: &mut dyn Write) -> io::Result<()> {
        'segment: loop {
            let at_start = self.at == At::Code && !self.exec && !self.stmt_code;
            if at_start && let Some(delimiter) = delimiter_command(seg) {
                if delimiter.is_empty()
                    || delimiter
                        .iter()
                        .any(|b| b.is_ascii_alphanumeric() || b"'\"`\\#-/*@".contains(b))
                {
                    return Err(self.refuse(
                        self.line_no,
                        format!(
                            "DELIMITER {:?} is not one a dump uses",
                            String::from_utf8_lossy(&delimiter)
                        ),
                    ));
                }
                self.delimiter = delimiter;
                out.write_all(&self.stmt)?;
                self.stmt.clear();
                return out.write_all(seg);
            }
            if self.stmt.is_empty() {
                self.stmt_line = self.line_no;
                self.stmt_exec = self.exec;
            }
            let code_before = self.stmt_code;
            let mut i = 0;
            while i < seg.len() {
                let b = seg[i];
                match self.at {
                    At::Comment => {
                        if b == b'*' && seg.get(i + 1) == Some(&b'/') {
                            self.at = At::Code;
                            i += 1;
                        }
                    }
                    At::Str(q) => {
                        if b == b'\\' {
                            i += 1;
                        } else if b == q {
                            if seg.get(i + 1) == Some(&q) {
                                i += 1;
                            } else {
                                self.at = At::Code;
                            }
                        }
                    }
                    At::Ident => {
                        if b == b'`' {
                            if seg.get(i + 1) == Some(&b'`') {
                                i += 1;
                            } else {
                                self.at = At::Code;
                            }
                        }
                    }
                    At::Code => {
                        if seg[i..].starts_with(&self.delimiter) {
                            if !code_before && self.stmt_code {
                                self.stmt_line = self.line_no;
                            }
                            let mut stmt = std::mem::take(&mut self.stmt);
                            stmt.extend_from_slice(&seg[..i]);
                            self.statement(&stmt, out)?;
                            out.write_all(&self.delimiter)?;
                            self.stmt_code = false;
                            seg = &seg[i + self.delimiter.len()..];
                            continue 'segment;
                        }
                        match b {
                            b'\'' | b'"' => {
                                self.at = At::Str(b);
                                self.stmt_code = true;
                            }
                            b'`' => {
                                self.at = At::Ident;
                                self.stmt_code = true;
                            }
                            b'#' => break,
                            b'-' if seg.get(i + 1) == Some(&b'-')
                                && seg.get(i + 2).is_none_or(|c| *c <= b' ') =>
                            {
                                break;
                            }
                            b'/' if seg.get(i + 1) == Some(&b'*') => {
                                if self.exec {
                                    // Servers disagree on whether this nests: refused rather
                                    // than guessed.
                                    return Err(self.refuse(
                                        self.line_no,
                                        "a comment inside an executable /*! */ comment",
                                    ));
                                }
                                if seg.get(i + 2) == Some(&b'!')
                                    || (seg.get(i + 2) == Some(&b'M')
                                        && seg.get(i + 3) == Some(&b'!'))
                                {
                                    self.exec = true;
                                    self.stmt_code = true;
                                } else {
                                    self.at = At::Comment;
                                }
                                i += 1;
                            }
                            b'*' if self.exec && seg.get(i + 1) == Some(&b'/') => {
                                self.exec = false;
                                i += 1;
                            }
                            b'\\' => {
                                return Err(self.refuse(
                                    self.line_no,
                                    "a backslash outside a string: a command to the mysql client (\\! runs a shell, \\u switches database, \\C changes the character set)",
                                ));
                            }
                            0 => {
                                return Err(
                                    self.refuse(self.line_no, "a NUL byte outside a string")
                                );
                            }
                            c if !c.is_ascii_whitespace() => self.stmt_code = true,
                            _ => {}
                        }
                    }
                }
                i += 1;
            }
            if !code_before && self.stmt_code {
                self.stmt_line = self.line_no;
            }
            self.stmt.extend_from_slice(seg);
            if self.stmt.len() > MAX_STATEMENT {
                return Err(self.refuse(
                    self.stmt_line,
                    "a statement longer than 1 GiB (more than any server takes in one packet)",
                ));
            }
            return Ok(());
        }
    }

    /// Ends the dump: the last statement must be complete and the trailer present.
    ///
    /// Fails with the reason otherwise.
    pub fn finish(&mut self, out: &mut dyn Write) -> Result<(), String> {
        if self.at != At::Code || self.exec {
            return Err(format!(
                "the dump ends inside a string or comment opened at line {}: it is incomplete",
                self.stmt_line
            ));
        }
        if self.stmt_code {
            return Err(format!(
                "the dump ends in the middle of a statement (from line {}): it is incomplete",
                self.stmt_line
            ));
        }
        out.write_all(&self.stmt).map_err(|e| e.to_string())?;
        self.stmt.clear();
        if !self.trailer {
            return Err(
                "the dump ends without its `-- Dump completed` trailer: it is incomplete".into(),
            );
        }
        Ok(())
    }

    /// Checks one complete statement and writes it, rewritten.
    fn statement(&mut self, stmt: &[u8], out: &mut dyn Write) -> io::Result<()> {
        let line = self.stmt_line;
        let toks = tokenize(stmt, self.stmt_exec).map_err(|why| self.refuse(line, why))?;
        let mut rewrites: Vec<(usize, usize, String)> = Vec::new();
        self.check(&toks, &mut rewrites)
            .map_err(|why| self.refuse(line, format!("{why} (in: {})", excerpt(stmt))))?;
        rewrites.sort_by_key(|r| r.0);
        let mut pos = 0;
        for (start, end, with) in rewrites {
            if start < pos {
                continue;
            }
            out.write_all(&stmt[pos..start])?;
            out.write_all(with.as_bytes())?;
            pos = end;
        }
        out.write_all(&stmt[pos..])
    }

    /// The target of dump database `name`, if the dump may name it.
    fn target(&self, name: &str) -> Option<&str> {
        self.map
            .iter()
            .find(|(from, _)| from == name)
            .map(|(_, to)| to.as_str())
    }

    /// A database named at `tok`: must be one of the dump's; renamed to its target.
    fn database(
        &self,
        tok: &Tok,
        what: &str,
        rewrites: &mut Vec<(usize, usize, String)>,
    ) -> Result<String, String> {
        let name = stmt_name(tok);
        let Some(target) = self.target(&name) else {
            return Err(format!(
                "{what} database `{name}`, which is not the one being restored"
            ));
        };
        if target != name {
            rewrites.push((tok.start, tok.end, quote_ident(target)));
        }
        Ok(target.to_string())
    }

    fn check(
        &mut self,
        toks: &[Tok],
        rewrites: &mut Vec<(usize, usize, String)>,
    ) -> Result<(), String> {
        let Some(first) = toks.first() else {
            return Ok(());
        };
        let word = |i: usize| toks.get(i).filter(|t| t.kind == Kind::Word);
        let second = word(1).map(|t| t.text.as_str()).unwrap_or("");
        match (first.kind.clone(), first.text.as_str()) {
            (Kind::Word, "SET") => self.check_set(&toks[1..])?,
            (Kind::Word, "USE" | "INSERT" | "REPLACE" | "DO" | "SELECT" | "COMMIT" | "BEGIN")
            | (Kind::Word, "ROLLBACK") => {}
            (Kind::Word, "LOCK" | "UNLOCK") if second == "TABLES" || second == "TABLE" => {}
            (Kind::Word, "START") if second == "TRANSACTION" => {}
            (Kind::Word, "RENAME") if second == "TABLE" => {}
            (Kind::Word, "TRUNCATE") => {}
            (Kind::Word, "CREATE" | "ALTER" | "DROP") => {
                let kind = toks[1..]
                    .iter()
                    .find(|t| t.kind == Kind::Word && OBJECT_KINDS.contains(&t.text.as_str()));
                match kind.map(|t| t.text.as_str()) {
                    Some(
                        "DATABASE" | "SCHEMA" | "TABLE" | "VIEW" | "TRIGGER" | "PROCEDURE"
                        | "FUNCTION" | "EVENT" | "SEQUENCE" | "INDEX",
                    ) => {}
                    Some(other) => {
                        return Err(format!(
                            "{} {other} is not a statement a database dump holds",
                            first.text
                        ));
                    }
                    None => {
                        return Err(format!(
                            "a {} statement of a kind a database dump does not hold",
                            first.text
                        ));
                    }
                }
            }
            _ => {
                return Err(format!(
                    "`{}` does not start a statement a database dump holds",
                    first.text
                ));
            }
        }
        // Rules for every token, bodies of triggers and routines included.
        for (i, t) in toks.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| &toks[p]);
            let next = toks.get(i + 1);
            let after_dot = prev.is_some_and(|p| p.is_punct(b'.'));
            if t.kind == Kind::Word && !after_dot {
                let w = t.text.as_str();
                if FORBIDDEN_WORDS.contains(&w) {
                    return Err(format!("`{w}` reaches beyond the database being restored"));
                }
                let n = next
                    .filter(|n| n.kind == Kind::Word)
                    .map(|n| n.text.as_str());
                match (w, n) {
                    ("LOAD", Some("DATA" | "XML" | "INDEX"))
                    | ("CHANGE", Some("MASTER" | "REPLICATION"))
                    | ("START" | "STOP", Some("SLAVE" | "REPLICA" | "ALL"))
                    | ("RESET", _)
                    | ("CREATE" | "ALTER" | "DROP" | "RENAME", Some("USER" | "ROLE" | "SERVER"))
                    | ("SET", Some("GLOBAL" | "PASSWORD" | "ROLE" | "STATEMENT")) => {
                        return Err(format!(
                            "`{w}{}` reaches beyond the database being restored",
                            n.map(|n| format!(" {n}")).unwrap_or_default()
                        ));
                    }
                    ("SET", Some("DEFAULT"))
                        if toks.get(i + 2).is_some_and(|t| t.is_word("ROLE")) =>
                    {
                        return Err(
                            "`SET DEFAULT ROLE` reaches beyond the database being restored".into(),
                        );
                    }
                    ("ENGINE", _) => {
                        let engine = toks[i + 1..].iter().find(|t| !t.is_punct(b'='));
                        if let Some(e) = engine
                            && ["CONNECT", "FEDERATED", "FEDERATEDX", "SPIDER"]
                                .contains(&e.text.to_uppercase().as_str())
                        {
                            return Err(format!(
                                "a table with ENGINE={}, which reaches files or servers outside the database",
                                e.text
                            ));
                        }
                    }
                    ("USE", _) => {
                        let Some(name) = next.filter(|n| n.is_name()) else {
                            return Err("USE without a database name".into());
                        };
                        if !(name.kind == Kind::Word
                            && ["INDEX", "KEY"].contains(&name.text.as_str()))
                        {
                            let target = self.database(name, "it switches to", rewrites)?;
                            self.current = Some(target);
                        }
                    }
                    ("DATABASE" | "SCHEMA", _) => {
                        let mut j = i + 1;
                        while toks
                            .get(j)
                            .is_some_and(|t| ["IF", "NOT", "EXISTS"].contains(&t.text.as_str()))
                        {
                            j += 1;
                        }
                        if let Some(name) = toks.get(j).filter(|n| {
                            n.kind == Kind::Ident
                                || (n.kind == Kind::Word
                                    && !DATABASE_OPTIONS.contains(&n.text.as_str()))
                        }) {
                            self.database(name, "it names", rewrites)?;
                        }
                    }
                    _ => {}
                }
            }
            if t.kind == Kind::SysVar && t.text.starts_with("global.") {
                return Err(format!("@@{} is a global setting of the server", t.text));
            }
            if t.kind == Kind::Word
                && t.text == "DEFINER"
                && !after_dot
                && next.is_some_and(|n| n.is_punct(b'='))
            {
                let account: Vec<&str> = toks[i + 1..]
                    .iter()
                    .skip_while(|t| t.is_punct(b'='))
                    .take(2)
                    .map(|t| t.text.as_str())
                    .collect();
                self.definers.insert(account.join("@"));
            }
            // A qualified name: `db`.`table`, db.table.column.
            if t.is_name()
                && !after_dot
                && next.is_some_and(|n| n.is_punct(b'.'))
                && toks
                    .get(i + 2)
                    .is_some_and(|n| n.is_name() || n.is_punct(b'*'))
            {
                let original = &stmt_name(t);
                let key = original.to_lowercase();
                if let Some(target) = self.target(original) {
                    if target != original {
                        rewrites.push((t.start, t.end, quote_ident(target)));
                    }
                } else if self.others.contains(&key) {
                    return Err(format!(
                        "it names database `{original}`, which is not the one being restored"
                    ));
                }
            }
        }
        // Tables, for the comparison afterwards.
        let kind = toks
            .iter()
            .position(|t| t.kind == Kind::Word && OBJECT_KINDS.contains(&t.text.as_str()));
        if first.is_word("CREATE")
            && let Some(at) = kind.filter(|k| toks[*k].is_word("TABLE"))
        {
            let mut j = at + 1;
            while toks.get(j).is_some_and(|t| {
                t.kind == Kind::Word && ["IF", "NOT", "EXISTS"].contains(&t.text.as_str())
            }) {
                j += 1;
            }
            if let Some(name) = toks.get(j).filter(|t| t.is_name()) {
                let qualified = toks.get(j + 1).is_some_and(|t| t.is_punct(b'.'));
                let (db, table) = if qualified {
                    let db = self
                        .target(&stmt_name(name))
                        .unwrap_or_default()
                        .to_string();
                    (db, toks.get(j + 2).map(stmt_name).unwrap_or_default())
                } else {
                    (self.current.clone().unwrap_or_default(), stmt_name(name))
                };
                self.tables.push((db, table));
            }
        }
        Ok(())
    }

    /// The assignments of a top-level `SET`.
    fn check_set(&mut self, toks: &[Tok]) -> Result<(), String> {
        let mut parts: Vec<&[Tok]> = Vec::new();
        let mut depth = 0i32;
        let mut from = 0;
        for (i, t) in toks.iter().enumerate() {
            match t.kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => depth -= 1,
                Kind::Punct(b',') if depth == 0 => {
                    parts.push(&toks[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&toks[from..]);
        for part in parts {
            let Some(lhs) = part.first() else { continue };
            let (var, rest) = match (&lhs.kind, lhs.text.as_str()) {
                (Kind::Word, "NAMES") | (Kind::Word, "CHARSET") => {
                    check_charset(part.get(1))?;
                    continue;
                }
                (Kind::Word, "CHARACTER") => {
                    check_charset(part.get(2))?;
                    continue;
                }
                (Kind::Word, "TRANSACTION") => continue,
                (Kind::Word, "SESSION" | "LOCAL") => match part.get(1) {
                    Some(v) if v.is_name() => (v.text.to_lowercase(), &part[2..]),
                    _ => return Err("SET SESSION without a variable".into()),
                },
                (Kind::Var, _) => {
                    let name = lhs.text.to_lowercase();
                    let value = value_of(&part[1..]);
                    self.safe_mode_vars.remove(&name);
                    self.safe_charset_vars.remove(&name);
                    match value {
                        [v] if v.kind == Kind::SysVar && session_var(&v.text) == "sql_mode" => {
                            self.safe_mode_vars.insert(name);
                        }
                        [v] if v.kind == Kind::SysVar
                            && session_var(&v.text) == "character_set_client" =>
                        {
                            self.safe_charset_vars.insert(name);
                        }
                        _ => {}
                    }
                    continue;
                }
                (Kind::SysVar, _) => (session_var(&lhs.text).to_string(), &part[1..]),
                (Kind::Word | Kind::Ident, _) => (lhs.text.to_lowercase(), &part[1..]),
                _ => return Err("a SET that is not an assignment".into()),
            };
            if !SESSION_VARS.contains(&var.as_str()) {
                return Err(format!(
                    "it sets {var}, a server setting a database dump does not set"
                ));
            }
            let value = value_of(rest);
            match var.as_str() {
                "sql_mode" => match value {
                    [v] if v.kind == Kind::Str => {
                        for flag in v.text.split(',') {
                            if !SAFE_MODES.contains(&flag.trim().to_uppercase().as_str()) {
                                return Err(format!(
                                    "sql_mode {flag} changes how the rest of the dump is read"
                                ));
                            }
                        }
                    }
                    [v] if v.kind == Kind::Var
                        && self.safe_mode_vars.contains(&v.text.to_lowercase()) => {}
                    [v] if v.is_word("DEFAULT") => {}
                    _ => {
                        return Err("sql_mode set to a value resticpilot cannot check".to_string());
                    }
                },
                "character_set_client" => match value {
                    [v] if v.kind == Kind::Var
                        && self.safe_charset_vars.contains(&v.text.to_lowercase()) => {}
                    [v] => check_charset(Some(v))?,
                    _ => {
                        return Err(
                            "character_set_client set to a value resticpilot cannot check"
                                .to_string(),
                        );
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }
}

/// Object kinds after CREATE / ALTER / DROP.
const OBJECT_KINDS: [&str; 17] = [
    "DATABASE",
    "SCHEMA",
    "TABLE",
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "SEQUENCE",
    "INDEX",
    "USER",
    "ROLE",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "INSTANCE",
    "PACKAGE",
];

/// Words after `ALTER DATABASE` that start its options rather than name it.
const DATABASE_OPTIONS: [&str; 6] = [
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "COMMENT",
    "UPGRADE",
];

/// The name as the server compares it: a bare word as written.
fn stmt_name(t: &Tok) -> String {
    if t.kind == Kind::Word {
        t.raw.clone()
    } else {
        t.text.clone()
    }
}

/// `@@session.sql_mode` -> `sql_mode`.
fn session_var(name: &str) -> &str {
    name.strip_prefix("session.")
        .or_else(|| name.strip_prefix("local."))
        .unwrap_or(name)
}

/// The value tokens of an assignment (after `=` or `:=`).
fn value_of(toks: &[Tok]) -> &[Tok] {
    match toks {
        [eq, rest @ ..] if eq.is_punct(b'=') => rest,
        [colon, eq, rest @ ..] if colon.is_punct(b':') && eq.is_punct(b'=') => rest,
        other => other,
    }
}

fn check_charset(t: Option<&Tok>) -> Result<(), String> {
    match t {
        Some(t) if SAFE_CHARSETS.contains(&t.text.to_lowercase().as_str()) => Ok(()),
        Some(t) => Err(format!(
            "the client character set {} lets a backslash hide inside a multi-byte character",
            t.text
        )),
        None => Err("a character set without a name".into()),
    }
}

/// `Some(new delimiter)` when `line` is the client's `DELIMITER` command.
fn delimiter_command(line: &[u8]) -> Option<Vec<u8>> {
    let trimmed = line.trim_ascii_start();
    if trimmed.len() < 10 || !trimmed[..9].eq_ignore_ascii_case(b"delimiter") {
        return None;
    }
    if !trimmed[9].is_ascii_whitespace() {
        return None;
    }
    let rest = trimmed[10..].trim_ascii();
    Some(
        rest.split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default()
            .to_vec(),
    )
}

/// The first characters of a statement, for a message.
fn excerpt(stmt: &[u8]) -> String {
    let text = String::from_utf8_lossy(stmt);
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if flat.chars().count() > 100 {
        format!("{}...", flat.chars().take(100).collect::<String>())
    } else {
        flat
    }
}

/// The tokens of one statement, comments dropped and executable comments read as code.
/// `exec` says whether the statement starts inside an executable comment.
fn tokenize(s: &[u8], mut exec: bool) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut i = 0;
    let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    while i < s.len() {
        let b = s[i];
        let start = i;
        match b {
            _ if b.is_ascii_whitespace() => i += 1,
            b'#' => i = line_end(s, i),
            b'-' if s.get(i + 1) == Some(&b'-') && s.get(i + 2).is_none_or(|c| *c <= b' ') => {
                i = line_end(s, i)
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                let exec_marker = match (s.get(i + 2), s.get(i + 3)) {
                    (Some(b'!'), _) => Some(i + 3),
                    (Some(b'M'), Some(b'!')) => Some(i + 4),
                    _ => None,
                };
                if let Some(mut j) = exec_marker {
                    while s.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                    exec = true;
                    i = j;
                } else {
                    match find(s, i + 2, b"*/") {
                        Some(end) => i = end + 2,
                        None => return Err("a comment that never ends".into()),
                    }
                }
            }
            b'*' if exec && s.get(i + 1) == Some(&b'/') => {
                exec = false;
                i += 2;
            }
            b'\'' | b'"' => {
                let mut value = Vec::new();
                i += 1;
                loop {
                    match s.get(i) {
                        None => return Err("a string that never ends".into()),
                        Some(b'\\') => {
                            if let Some(c) = s.get(i + 1)
                                && value.len() < MAX_KEPT
                            {
                                value.push(*c);
                            }
                            i += 2;
                        }
                        Some(c) if *c == b => {
                            if s.get(i + 1) == Some(&b) {
                                value.push(b);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(c) => {
                            if value.len() < MAX_KEPT {
                                value.push(*c);
                            }
                            i += 1;
                        }
                    }
                }
                toks.push(Tok {
                    raw: String::new(),
                    kind: Kind::Str,
                    text: String::from_utf8_lossy(&value).into_owned(),
                    start,
                    end: i,
                });
            }
            b'`' => {
                let (value, end) = backticked(s, i)?;
                i = end;
                toks.push(Tok {
                    raw: String::new(),
                    kind: Kind::Ident,
                    text: value,
                    start,
                    end,
                });
            }
            b'@' => {
                let sys = s.get(i + 1) == Some(&b'@');
                let mut j = i + if sys { 2 } else { 1 };
                let text = if !sys && s.get(j) == Some(&b'`') {
                    let (value, end) = backticked(s, j)?;
                    j = end;
                    value
                } else if !sys && matches!(s.get(j), Some(b'\'' | b'"')) {
                    let q = s[j];
                    let from = j + 1;
                    j = from;
                    while s.get(j).is_some_and(|c| *c != q) {
                        j += 1;
                    }
                    let value = String::from_utf8_lossy(&s[from..j.min(s.len())]).into_owned();
                    j += 1;
                    value
                } else {
                    let from = j;
                    while s.get(j).is_some_and(|c| is_word_byte(*c) || *c == b'.') {
                        j += 1;
                    }
                    String::from_utf8_lossy(&s[from..j]).into_owned()
                };
                i = j;
                toks.push(Tok {
                    raw: String::new(),
                    kind: if sys { Kind::SysVar } else { Kind::Var },
                    text: if sys { text.to_lowercase() } else { text },
                    start,
                    end: i,
                });
            }
            b'\\' => {
                return Err(
                    "a backslash outside a string: a command to the mysql client".to_string(),
                );
            }
            0 => return Err("a NUL byte outside a string".into()),
            _ if b.is_ascii_digit() => {
                while s
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
                {
                    i += 1;
                }
                let bytes = &s[start..i];
                let numeric = bytes.iter().all(u8::is_ascii_digit)
                    || bytes.starts_with(b"0x")
                    || bytes.starts_with(b"0b")
                    || bytes.iter().any(|c| *c == b'e' || *c == b'E');
                toks.push(Tok {
                    raw: String::new(),
                    kind: if numeric { Kind::Num } else { Kind::Word },
                    // Numbers are never read: no copy of the rows' values.
                    text: if numeric {
                        String::new()
                    } else {
                        String::from_utf8_lossy(bytes).to_uppercase()
                    },
                    start,
                    end: i,
                });
            }
            _ if is_word_byte(b) => {
                while s.get(i).is_some_and(|c| is_word_byte(*c)) {
                    i += 1;
                }
                toks.push(Tok {
                    raw: String::new(),
                    kind: Kind::Word,
                    text: String::from_utf8_lossy(&s[start..i]).to_uppercase(),
                    start,
                    end: i,
                });
            }
            _ => {
                i += 1;
                toks.push(Tok {
                    raw: String::new(),
                    kind: Kind::Punct(b),
                    text: (b as char).to_string(),
                    start,
                    end: i,
                });
            }
        }
    }
    for t in &mut toks {
        if t.kind == Kind::Word {
            t.raw = String::from_utf8_lossy(&s[t.start..t.end]).into_owned();
        }
    }
    Ok(toks)
}

/// A backtick-quoted identifier starting at `s[i]`: its value and the index after it.
fn backticked(s: &[u8], i: usize) -> Result<(String, usize), String> {
    let mut value = Vec::new();
    let mut j = i + 1;
    loop {
        match s.get(j) {
            None => return Err("a quoted name that never ends".into()),
            Some(b'`') if s.get(j + 1) == Some(&b'`') => {
                value.push(b'`');
                j += 2;
            }
            Some(b'`') => return Ok((String::from_utf8_lossy(&value).into_owned(), j + 1)),
            Some(c) => {
                value.push(*c);
                j += 1;
            }
        }
    }
}

fn line_end(s: &[u8], i: usize) -> usize {
    s[i..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(s.len(), |p| i + p + 1)
}

fn find(s: &[u8], from: usize, what: &[u8]) -> Option<usize> {
    s.get(from..)?
        .windows(what.len())
        .position(|w| w == what)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `text` for a dump of `shop` loaded into `into`, on a server that also has
    /// `orig`; returns what would reach the client.
    fn scan(text: &str, into: &str) -> Result<String, String> {
        let mut s = Scanner::new(
            vec![("shop".into(), into.into())],
            &["orig".to_string(), "shop".to_string()],
        );
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            s.line(line.as_bytes(), &mut out)
                .map_err(|e| e.to_string())?;
        }
        s.finish(&mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    const TRAILER: &str = "-- Dump completed on 2026-11-22 23:00:00\n";

    fn dump(body: &str) -> String {
        format!(
            "/*M!999999\\- enable the sandbox mode */ \n\
             /*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n\
             CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET latin1 */;\n\
             USE `shop`;\n{body}\
             /*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\n{TRAILER}"
        )
    }

    #[test]
    fn a_real_dump_passes_and_is_renamed() {
        let body = "DROP TABLE IF EXISTS `t`;\n\
            CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` varchar(20)\n) ENGINE=InnoDB;\n\
            LOCK TABLES `t` WRITE;\n\
            INSERT INTO `t` VALUES (1,'a;b'),(2,'it''s \\'USE orig\\' -- x');\n\
            UNLOCK TABLES;\n\
            /*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n\
            /*!50003 SET sql_mode              = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION' */ ;\n\
            DELIMITER ;;\n\
            /*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 trigger tr after insert on t for each row insert into audit(note) values ('x; USE orig') */;;\n\
            DELIMITER ;\n\
            /*!50003 SET sql_mode              = @saved_sql_mode */ ;\n\
            /*!50001 CREATE VIEW `v` AS select `t`.`id` AS `id` from `t` */;\n";
        let text = dump(body);
        let out = scan(&text, "shop").unwrap();
        assert_eq!(out, text, "nothing changes when the name stays");
        let out = scan(&text, "copy").unwrap();
        assert!(out.contains("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `copy` /*!40100"));
        assert!(out.contains("\nUSE `copy`;\n"));
        assert_eq!(out.len(), text.len());
    }

    /// The header and footer mariadb-dump 11.8 (Debian trixie, the image's client) writes, with
    /// a system-versioned table: each `SET` of it, as the binary's own strings spell it.
    #[test]
    fn a_mariadb_11_8_dump_passes() {
        let text = "/*M!999999\\- enable the sandbox mode */ \n\
            -- MariaDB dump 10.19-11.8.9-MariaDB, for debian-linux-gnu (x86_64)\n\
            /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
            /*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;\n\
            /*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;\n\
            /*!40101 SET NAMES utf8mb4 */;\n\
            /*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n\
            /*!40103 SET TIME_ZONE='+00:00' */;\n\
            /*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\
            /*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\
            /*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n\
            /*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;\n\
            CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci */;\n\
            USE `shop`;\n\
            DROP TABLE IF EXISTS `t`;\n\
            /*!40101 SET @saved_cs_client     = @@character_set_client */;\n\
            /*!40101 SET character_set_client = utf8mb4 */;\n\
            CREATE TABLE `t` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB WITH SYSTEM VERSIONING;\n\
            /*!40101 SET character_set_client = @saved_cs_client */;\n\
            /*M!101100 SET @old_system_versioning_insert_history=@@session.system_versioning_insert_history, @@session.system_versioning_insert_history=1 */;\n\
            LOCK TABLES `t` WRITE;\n\
            /*!40000 ALTER TABLE `t` DISABLE KEYS */;\n\
            INSERT INTO `t` VALUES (1);\n\
            /*!40000 ALTER TABLE `t` ENABLE KEYS */;\n\
            UNLOCK TABLES;\n\
            /*M!101100 SET system_versioning_insert_history=@old_system_versioning_insert_history */;\n\
            /*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n\
            /*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\
            /*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n\
            /*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n\
            /*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\
            /*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n\
            /*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n\
            /*M!100616 SET NOTE_VERBOSITY=@OLD_NOTE_VERBOSITY */;\n\n\
            -- Dump completed on 2026-11-30 17:23:08\n";
        let out = scan(text, "copy").unwrap();
        assert!(out.contains("\nUSE `copy`;\n"));
        // note_verbosity is accepted as the session setting it is; a global one is still refused.
        let global = dump("/*M!100616 SET GLOBAL NOTE_VERBOSITY=0 */;\n");
        assert!(scan(&global, "shop").is_err());
    }

    #[test]
    fn every_way_to_reach_another_database_is_refused() {
        for (sql, why) in [
            ("use orig;\n", "orig"),
            ("USE\torig;\n", "orig"),
            ("Use `orig` ;\n", "orig"),
            ("INSERT INTO `orig`.`t` VALUES (1);\n", "orig"),
            ("INSERT INTO orig . t VALUES (1);\n", "orig"),
            ("INSERT INTO orig/* x */.t VALUES (1);\n", "orig"),
            ("/*!40000 USE orig*/;\n", "orig"),
            ("/*!40000 INSERT INTO orig.t VALUES (1)*/;\n", "orig"),
            ("CREATE DATABASE x;\n", "`x`"),
            ("CREATE SCHEMA IF NOT EXISTS `x`;\n", "`x`"),
            ("DROP DATABASE orig;\n", "orig"),
            ("SELECT * FROM mysql.user;\n", "mysql"),
            (
                "INSERT INTO t SELECT * FROM `information_schema`.tables;\n",
                "information_schema",
            ),
            (
                "DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO orig.t VALUES (1);;\nDELIMITER ;\n",
                "orig",
            ),
            (
                "DELIMITER ;;\nCREATE DEFINER=`root`@`%` PROCEDURE p() BEGIN PREPARE s FROM 'DROP DATABASE orig'; EXECUTE s; END;;\nDELIMITER ;\n",
                "PREPARE",
            ),
            ("GRANT ALL ON *.* TO 'x'@'%';\n", "GRANT"),
            ("CREATE USER 'x'@'%';\n", "USER"),
            ("SET PASSWORD FOR root = PASSWORD('x');\n", "PASSWORD"),
            ("SET GLOBAL read_only = 1;\n", "GLOBAL"),
            ("SET @@global.read_only = 1;\n", "global"),
            ("SELECT 1 INTO OUTFILE '/tmp/x';\n", "OUTFILE"),
            ("SELECT LOAD_FILE('/etc/shadow');\n", "LOAD_FILE"),
            (
                "LOAD DATA INFILE '/etc/passwd' INTO TABLE t;\n",
                "LOAD DATA",
            ),
            (
                "CREATE TABLE x (a int) ENGINE=CONNECT table_type=CSV file_name='/etc/passwd';\n",
                "CONNECT",
            ),
            (
                "CREATE TABLE x (a int) DATA DIRECTORY='/etc';\n",
                "DIRECTORY",
            ),
            ("SET sql_mode = 'ANSI_QUOTES';\n", "ANSI_QUOTES"),
            ("/*!40000 /* USE orig */;\n", "inside an executable"),
            (
                "SET SQL_MODE='NO_BACKSLASH_ESCAPES';\n",
                "NO_BACKSLASH_ESCAPES",
            ),
            ("SET @m = 'ANSI'; SET sql_mode = @m;\n", "cannot check"),
            ("SET NAMES gbk;\n", "gbk"),
            ("SET character_set_client = sjis;\n", "sjis"),
            (
                "INSERT INTO t VALUES (1); \\! touch /tmp/pwned\n",
                "backslash",
            ),
            ("\\u orig\n", "backslash"),
            ("SHUTDOWN;\n", "SHUTDOWN"),
            ("KILL 1;\n", "KILL"),
            ("HANDLER t OPEN;\n", "HANDLER"),
        ] {
            let err = scan(&dump(sql), "copy").expect_err(sql);
            assert!(err.contains(why), "{sql:?}: {err}");
            assert!(
                err.starts_with("line 5:") || err.starts_with("line 6:"),
                "{sql:?}: {err}"
            );
        }
    }

    #[test]
    fn a_dump_without_its_trailer_or_cut_in_a_statement_is_refused() {
        let full = dump("INSERT INTO t VALUES (1);\n");
        let cut = full.replace(TRAILER, "");
        assert!(scan(&cut, "shop").unwrap_err().contains("trailer"));
        let mid = "USE `shop`;\nINSERT INTO t VALUES (1),\n-- Dump completed on x\n";
        assert!(
            scan(mid, "shop")
                .unwrap_err()
                .contains("middle of a statement")
        );
        let in_string = "USE `shop`;\nINSERT INTO t VALUES ('a\n-- Dump completed on x\n";
        assert!(scan(in_string, "shop").is_err());
    }

    #[test]
    fn tables_are_noted_under_their_target() {
        let mut s = Scanner::new(vec![("shop".into(), "copy".into())], &[]);
        let text = dump(
            "CREATE TABLE `orders` (\n `id` int\n);\nCREATE TABLE IF NOT EXISTS `items` (`a` int);\n",
        );
        for line in text.split_inclusive('\n') {
            s.line(line.as_bytes(), &mut io::sink()).unwrap();
        }
        s.finish(&mut io::sink()).unwrap();
        assert_eq!(
            s.tables,
            [
                ("copy".to_string(), "orders".to_string()),
                ("copy".to_string(), "items".to_string())
            ]
        );
        assert!(s.trailer);
    }

    #[test]
    fn definers_are_noted() {
        let mut s = Scanner::new(vec![("shop".into(), "shop".into())], &[]);
        let text = dump(
            "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`app`@`%` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1 AS `a` */;\n",
        );
        for line in text.split_inclusive('\n') {
            s.line(line.as_bytes(), &mut io::sink()).unwrap();
        }
        assert_eq!(s.definers.iter().collect::<Vec<_>>(), ["app@%"]);
    }
}
