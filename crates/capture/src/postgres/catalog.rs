//! What capture asks PostgreSQL's catalog over an ordinary connection (tokio-postgres):
//! the preconditions, each failing with an error that says what to do (wal_level,
//! REPLICATION privilege, free slots, slot in use, publication, keys); the publication
//! created when missing; and each captured table's columns, key and types.

use std::collections::HashMap;

use tokio_postgres::{Client, NoTls};

use super::PgError;
use super::config::{PgSettings, PublicationMode};
use super::envelope::{PgColumn, PgTable};
use super::offsets::{Lsn, parse_lsn};
use super::pgoutput::{Relation, RelationColumn};
use super::protocol::{SESSION_SETTINGS, quote_ident};
use super::types::{Kind, PgModes, UserType, kind_of};
use crate::masks::mask_for;
use crate::sqlserver::columns::ColumnSettings;

/// An ordinary connection and the user types seen so far.
pub struct Catalog {
    pub client: Client,
    types: HashMap<u32, Option<UserType>>,
    /// The modes that decide the columns' kinds (the configuration's; the money digits
    /// are the database's, see [`Catalog::connect`]).
    pub modes: PgModes,
    /// `money`'s fraction digits under the database's own `lc_monetary`.
    money_digits: u32,
    /// Which columns the events carry, masked how, keyed by which (the configuration's).
    pub columns: ColumnSettings,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

/// The replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<Lsn>,
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> PgError + '_ {
    move |e| PgError::Query {
        what: what.to_owned(),
        reason: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    }
}

/// Connects (over TLS as the string's `sslmode` says, [`super::tls`]) with the session
/// settings that fix the values' text form; also returns `money`'s fraction digits
/// under the database's (or role's) own `lc_monetary`, read before the session's `C`
/// replaces it.
pub async fn connect(connection: &str) -> Result<(Client, u32), PgError> {
    let (rest, tls) = super::tls::split(connection).map_err(PgError::Connection)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(db("the connection string"))?;
    config.ssl_mode(tls.tokio_postgres_mode());
    let client = match tls.connector().map_err(PgError::Connection)? {
        None => {
            let (client, driver) = config.connect(NoTls).await.map_err(db("connecting"))?;
            spawn_driver(driver);
            client
        }
        Some(connector) => {
            let connector = postgres_native_tls::MakeTlsConnector::new(connector);
            let (client, driver) = config.connect(connector).await.map_err(db("connecting"))?;
            spawn_driver(driver);
            client
        }
    };
    let money_digits = client
        .query_one("SELECT scale((1::money)::numeric)::int", &[])
        .await
        .map_err(db("reading money's fraction digits"))?
        .get::<_, i32>(0)
        .max(0) as u32;
    let settings: Vec<String> = SESSION_SETTINGS
        .iter()
        .map(|(name, value)| format!("SET {name} = '{value}'"))
        .collect();
    client
        .batch_execute(&settings.join(";"))
        .await
        .map_err(db("session settings"))?;
    Ok((client, money_digits))
}

/// Runs a connection's driver until it closes.
fn spawn_driver<S, T>(driver: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = driver.await {
            tracing::debug!(%error, "catalog connection closed");
        }
    });
}

impl Catalog {
    pub async fn connect(connection: &str) -> Result<Catalog, PgError> {
        let (client, money_digits) = connect(connection).await?;
        Ok(Catalog {
            client,
            types: HashMap::new(),
            money_digits,
            modes: PgModes::default(),
            columns: ColumnSettings::default(),
        })
    }

    /// `server_version_num` (150004 for 15.4).
    pub async fn server_version(&self) -> Result<i32, PgError> {
        Ok(self
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(db("reading server_version_num"))?
            .get(0))
    }

    /// Checks what capture needs and creates the publication when missing (as
    /// `settings.publication_mode` allows). Returns the slot, if it exists.
    pub async fn prepare(&self, settings: &PgSettings) -> Result<Option<SlotState>, PgError> {
        let c = &self.client;
        let wal_level: String = c
            .query_one("SELECT current_setting('wal_level')", &[])
            .await
            .map_err(db("reading wal_level"))?
            .get(0);
        if wal_level != "logical" {
            return Err(PgError::WalLevel(wal_level));
        }
        let row = c
            .query_one(
                "SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(db("reading the role"))?;
        let (user, replication): (String, bool) = (row.get(0), row.get(1));
        if !replication {
            return Err(PgError::NoReplicationPrivilege(user));
        }
        for table in &settings.tables {
            self.check_table(table).await?;
        }
        self.publication(settings).await?;
        let slot = c
            .query_opt(
                "SELECT active_pid, confirmed_flush_lsn::text, plugin::text, database::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&settings.slot],
            )
            .await
            .map_err(db("reading the slot"))?;
        match slot {
            Some(row) => {
                let plugin: Option<String> = row.get(2);
                if plugin.as_deref() != Some("pgoutput") {
                    return Err(PgError::SlotPlugin {
                        slot: settings.slot.clone(),
                        plugin: plugin.unwrap_or_else(|| "none (a physical slot)".into()),
                    });
                }
                let state = SlotState {
                    active_pid: row.get(0),
                    confirmed_flush: row
                        .get::<_, Option<String>>(1)
                        .as_deref()
                        .and_then(parse_lsn),
                };
                if let Some(pid) = state.active_pid {
                    return Err(PgError::SlotInUse {
                        slot: settings.slot.clone(),
                        pid,
                    });
                }
                Ok(Some(state))
            }
            None => {
                self.check_free_slot().await?;
                Ok(None)
            }
        }
    }

    /// A slot can still be created.
    pub async fn check_free_slot(&self) -> Result<(), PgError> {
        let row = self
            .client
            .query_one(
                "SELECT count(*)::int, current_setting('max_replication_slots')::int FROM pg_replication_slots",
                &[],
            )
            .await
            .map_err(db("counting slots"))?;
        let (used, max): (i32, i32) = (row.get(0), row.get(1));
        if used >= max {
            return Err(PgError::NoFreeSlot { used, max });
        }
        Ok(())
    }

    async fn check_table(&self, table: &str) -> Result<(), PgError> {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let row = self
            .client
            .query_opt(
                "SELECT c.relreplident::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&schema, &name],
            )
            .await
            .map_err(db("reading the table"))?
            .ok_or_else(|| PgError::NoTable(table.to_owned()))?;
        let (identity, has_key): (String, bool) = (row.get(0), row.get(1));
        match identity.as_str() {
            "d" if !has_key => Err(PgError::NoKey(table.to_owned())),
            "n" => Err(PgError::NoKey(table.to_owned())),
            _ => Ok(()),
        }
    }

    async fn publication(&self, settings: &PgSettings) -> Result<(), PgError> {
        let c = &self.client;
        let name = &settings.publication;
        let exists = c
            .query_opt(
                "SELECT puballtables FROM pg_publication WHERE pubname = $1",
                &[name],
            )
            .await
            .map_err(db("reading the publication"))?;
        let quoted: Vec<String> = settings.tables.iter().map(|t| qualified(t)).collect();
        let Some(row) = exists else {
            let sql = match settings.publication_mode {
                PublicationMode::Disabled => {
                    return Err(PgError::NoPublication(name.clone()));
                }
                PublicationMode::AllTables => {
                    format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name))
                }
                PublicationMode::Filtered => format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(name),
                    quoted.join(", ")
                ),
            };
            c.batch_execute(&sql)
                .await
                .map_err(|e| PgError::CreatePublication {
                    publication: name.clone(),
                    reason: e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
                })?;
            tracing::info!(publication = %name, "publication created");
            return Ok(());
        };
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        for (table, quoted) in settings.tables.iter().zip(&quoted) {
            let (schema, t) = table.split_once('.').unwrap_or(("public", table));
            let listed = c
                .query_opt(
                    "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                    &[name, &schema, &t],
                )
                .await
                .map_err(db("reading the publication's tables"))?
                .is_some();
            if listed {
                continue;
            }
            if settings.publication_mode != PublicationMode::Filtered {
                return Err(PgError::PublicationMissingTable {
                    publication: name.clone(),
                    table: table.clone(),
                });
            }
            c.batch_execute(&format!(
                "ALTER PUBLICATION {} ADD TABLE {quoted}",
                quote_ident(name)
            ))
            .await
            .map_err(|e| PgError::CreatePublication {
                publication: name.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// A table's description as a `Relation` message would give it (for the snapshot).
    pub async fn relation_of(&self, table: &str) -> Result<Relation, PgError> {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let rows = self
            .client
            .query(
                "SELECT c.oid, a.attname::text, a.atttypid, a.atttypmod FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&schema, &name],
            )
            .await
            .map_err(db("reading the table's columns"))?;
        let id: u32 = rows
            .first()
            .map(|r| r.get(0))
            .ok_or_else(|| PgError::NoTable(table.to_owned()))?;
        Ok(Relation {
            id,
            schema: schema.to_owned(),
            table: name.to_owned(),
            replica_identity: b'd',
            columns: rows
                .iter()
                .map(|r| RelationColumn {
                    key: false,
                    name: r.get(1),
                    type_oid: r.get(2),
                    type_modifier: r.get(3),
                })
                .collect(),
        })
    }

    /// The database's tables (`schema.table`, ordinary and partitioned, outside the
    /// system schemas), in name order: what the table lists choose from.
    pub async fn tables(&self) -> Result<Vec<String>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT n.nspname::text || '.' || c.relname::text FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(db("listing the tables"))?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// The captured table `relation` describes: its columns mapped (an unmapped type is
    /// left out with a warning), nullability and key from the catalog.
    pub async fn table(&mut self, relation: &Relation) -> Result<PgTable, PgError> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.attnotnull, \
                   COALESCE((SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary), \
                            (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisreplident)) \
                 FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&relation.id],
            )
            .await
            .map_err(db("reading the table's keys"))?;
        let info: HashMap<String, (bool, Option<i32>)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        for column in &relation.columns {
            self.load_type(column.type_oid).await?;
        }
        let types = &self.types;
        let lookup = |oid: u32| types.get(&oid).cloned().flatten();
        let modes = PgModes {
            money_digits: self.money_digits,
            ..self.modes
        };
        let id = format!("{}.{}", relation.schema, relation.table);
        // `message_key_columns` replaces the primary key (or replica identity index).
        let custom_key = self
            .columns
            .keys
            .iter()
            .find(|(table, _)| *table == id)
            .map(|(_, names)| names);
        let mut columns = Vec::new();
        let mut key: Vec<(i32, usize)> = Vec::new();
        let mut value = Vec::new();
        for (index, column) in relation.columns.iter().enumerate() {
            let Some(kind) = kind_of(column.type_oid, column.type_modifier, modes, &lookup) else {
                tracing::warn!(table = %sluice_core::text::printable(&id), column = %sluice_core::text::printable(&column.name), type_oid = column.type_oid, "column of an unsupported type left out of the events");
                continue;
            };
            let (not_null, key_position) = info.get(&column.name).copied().unwrap_or((false, None));
            let key_position = match custom_key {
                Some(names) => names
                    .iter()
                    .position(|name| *name == column.name)
                    .map(|p| p as i32),
                None if key_position.is_some() => key_position,
                None => (column.key && relation.replica_identity == b'i').then_some(i32::MAX),
            };
            let full_name = format!("{id}.{}", column.name);
            let in_value = self.columns.filter.keeps(&full_name);
            // A column left out of the value stays only for the key, as Debezium's key
            // keeps its columns whatever the column lists say.
            if !in_value && key_position.is_none() {
                continue;
            }
            if let Some(position) = key_position {
                key.push((position, columns.len()));
            }
            if in_value {
                value.push(columns.len());
            }
            let mask = match kind {
                Kind::Text => mask_for(&self.columns.masks, &full_name).map(|mask| {
                    (
                        mask.clone(),
                        declared_length(column.type_oid, column.type_modifier),
                    )
                }),
                _ => None,
            };
            columns.push(PgColumn {
                name: column.name.clone(),
                kind,
                optional: !not_null,
                index,
                mask,
            });
        }
        if let Some(names) = custom_key
            && let Some(missing) = names
                .iter()
                .find(|name| !columns.iter().any(|c| &c.name == *name))
        {
            return Err(PgError::Query {
                what: format!("{id}: capture.message_key_columns"),
                reason: format!("the table has no column {missing} of a type sluice maps"),
            });
        }
        key.sort();
        Ok(PgTable {
            schema: relation.schema.clone(),
            table: relation.table.clone(),
            columns,
            key: key.into_iter().map(|(_, i)| i).collect(),
            value,
        })
    }

    /// Reads a non-built-in type (and its element or base type) into the cache.
    async fn load_type(&mut self, oid: u32) -> Result<(), PgError> {
        let mut next = Some(oid);
        while let Some(oid) = next.take() {
            // Built-in types below FirstGenbkiObjectId need no lookup, except as array
            // elements, which kind_of maps itself.
            if oid < 10_000 || self.types.contains_key(&oid) {
                return Ok(());
            }
            let row = self
                .client
                .query_opt(
                    "SELECT t.typname::text, t.typtype::text, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, \
                       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
                     FROM pg_type t WHERE t.oid = $1",
                    &[&oid],
                )
                .await
                .map_err(db("reading a type"))?;
            let user = row.map(|r| UserType {
                name: r.get(0),
                kind: r.get::<_, String>(1).bytes().next().unwrap_or(b'b'),
                element: r.get(2),
                enum_labels: r.get(3),
            });
            next = user.as_ref().map(|u| u.element).filter(|&e| e != 0);
            self.types.insert(oid, user);
        }
        Ok(())
    }

    /// The slot's lag: bytes of WAL between the server's position and the slot's
    /// `confirmed_flush_lsn`.
    pub async fn slot_lag(&self, slot: &str) -> Result<Option<i64>, PgError> {
        Ok(self
            .client
            .query_opt(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(db("reading the slot's lag"))?
            .and_then(|r| r.get(0)))
    }
}

/// The declared length of a `varchar(n)` or `char(n)` column (its type modifier less
/// the 4 bytes PostgreSQL adds), to which a hash mask is cut.
fn declared_length(type_oid: u32, typmod: i32) -> Option<usize> {
    (matches!(type_oid, 1042 | 1043) && typmod >= 4).then(|| (typmod - 4) as usize)
}

/// `"schema"."table"`.
pub fn qualified(table: &str) -> String {
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}
