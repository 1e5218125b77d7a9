//! What Debezium's schema-change events say about a column (`tableChanges[].table.
//! columns[]`): the values Microsoft's JDBC driver returns from
//! `DatabaseMetaData.getColumns` (`sp_columns_100` at ODBC 3, then the driver's type and
//! zero-size fix-ups), derived here from `sys.columns` so they can be unit-tested.
//!
//! Sizes follow `sp_columns_100`: `COLUMN_SIZE` is the precision for numbers and
//! date/time types (`datetime2(7)` → 27), characters for strings (`nvarchar(255)` →
//! 255), bytes for binaries, and `2147483647` for the `(max)` types.

use super::types::{Column, SqlType, SqlValue};

/// A column as the catalog describes it, beyond its value mapping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnCatalog {
    /// The type's name as `sys.types` has it (`nvarchar`, `int`); empty: derived from the
    /// [`SqlType`].
    pub type_name: String,
    /// `sys.columns.max_length`: bytes, `-1` for `(max)`.
    pub max_length: i16,
    /// An `IDENTITY` column (`autoIncremented`, and `int identity` as the type name).
    pub identity: bool,
    /// A computed column (`generated`).
    pub computed: bool,
    /// The default constraint's text, as SQL Server stores it (`((0))`, `(getdate())`).
    pub default: Option<String>,
}

/// `2147483647`: what the driver reports for `(max)`, `text`, `image` and `xml`.
const UNBOUNDED: i32 = i32::MAX;

impl Column {
    /// The base type name (`nvarchar`), from the catalog or, without one, the mapping.
    pub fn base_type_name(&self) -> &str {
        if !self.catalog.type_name.is_empty() {
            return &self.catalog.type_name;
        }
        match self.sql_type {
            SqlType::Bit => "bit",
            SqlType::TinyInt => "tinyint",
            SqlType::SmallInt => "smallint",
            SqlType::Int => "int",
            SqlType::BigInt => "bigint",
            SqlType::Real => "real",
            SqlType::Float => "float",
            SqlType::Text => "nvarchar",
            SqlType::Xml => "xml",
            SqlType::UniqueIdentifier => "uniqueidentifier",
            SqlType::Binary => "varbinary",
            SqlType::Decimal { .. } => "decimal",
            SqlType::Money => "money",
            SqlType::SmallMoney => "smallmoney",
            SqlType::Date => "date",
            SqlType::Time { .. } => "time",
            SqlType::DateTime => "datetime",
            SqlType::SmallDateTime => "smalldatetime",
            SqlType::DateTime2 { .. } => "datetime2",
            SqlType::DateTimeOffset { .. } => "datetimeoffset",
        }
    }

    /// `TYPE_NAME`: the base name, with ` identity` for an identity column.
    pub fn jdbc_type_name(&self) -> String {
        if self.catalog.identity {
            format!("{} identity", self.base_type_name())
        } else {
            self.base_type_name().to_owned()
        }
    }

    /// `DATA_TYPE` (`java.sql.Types`, and `microsoft.sql.Types.DATETIMEOFFSET` = -155).
    pub fn jdbc_type(&self) -> i32 {
        match self.base_type_name() {
            "bit" => -7,
            "tinyint" => -6,
            "smallint" => 5,
            "int" => 4,
            "bigint" => -5,
            "real" => 7,
            "float" => 8,
            "decimal" | "money" | "smallmoney" => 3,
            "numeric" => 2,
            "date" => 91,
            "time" => 92,
            "datetime" | "datetime2" | "smalldatetime" => 93,
            "datetimeoffset" => -155,
            "char" | "uniqueidentifier" => 1,
            "varchar" => 12,
            "text" => -1,
            "nchar" => -15,
            "nvarchar" | "sysname" => -9,
            "ntext" | "xml" => -16,
            "binary" | "timestamp" | "rowversion" => -2,
            "image" => -4,
            _ => -3, // varbinary
        }
    }

    /// `COLUMN_SIZE` (see the module docs).
    pub fn jdbc_length(&self) -> i32 {
        let fraction = |scale: u8| if scale == 0 { 0 } else { scale as i32 + 1 };
        let bytes = self.catalog.max_length as i32;
        match (self.sql_type, self.base_type_name()) {
            (SqlType::Bit, _) => 1,
            (SqlType::TinyInt, _) => 3,
            (SqlType::SmallInt, _) => 5,
            (SqlType::Int, _) => 10,
            (SqlType::BigInt, _) => 19,
            (SqlType::Real, _) => 24,
            (SqlType::Float, _) => 53,
            (SqlType::Decimal { precision, .. }, _) => precision as i32,
            (SqlType::Money, _) => 19,
            (SqlType::SmallMoney, _) => 10,
            (SqlType::Date, _) => 10,
            (SqlType::Time { scale }, _) => 8 + fraction(scale),
            (SqlType::DateTime, _) => 23,
            (SqlType::SmallDateTime, _) => 16,
            (SqlType::DateTime2 { scale }, _) => 19 + fraction(scale),
            (SqlType::DateTimeOffset { scale }, _) => 26 + fraction(scale),
            (SqlType::UniqueIdentifier, _) => 36,
            (SqlType::Xml, _) | (_, "text" | "image") => UNBOUNDED,
            (_, "ntext") => UNBOUNDED / 2,
            (_, _) if bytes < 0 => UNBOUNDED,
            (_, "nchar" | "nvarchar" | "sysname") => bytes / 2,
            _ => bytes,
        }
    }

    /// The column's default as a value, for the field schema's `default`
    /// (`schemas_enable = true`), as Debezium's `SqlServerDefaultValueConverter` parses
    /// the constraint's text: literals of numbers, `bit` and strings (`((0))`, `((1.50))`,
    /// `(N'new')`). Expressions (`(getdate())`, `(newid())`, `(NULL)`) give none: Debezium
    /// evaluates some on the server, which a field schema cannot repeat per event.
    pub fn default_value(&self) -> Option<SqlValue> {
        let mut text = self.catalog.default.as_deref()?.trim();
        while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            text = inner.trim();
        }
        let string = || {
            let quoted = text.strip_prefix('N').unwrap_or(text);
            let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
            Some(inner.replace("''", "'"))
        };
        let integer = || {
            string()
                .unwrap_or_else(|| text.to_owned())
                .parse::<i64>()
                .ok()
        };
        Some(match self.sql_type {
            SqlType::Bit => SqlValue::Bit(integer()? != 0),
            SqlType::TinyInt => SqlValue::U8(u8::try_from(integer()?).ok()?),
            SqlType::SmallInt => SqlValue::I16(i16::try_from(integer()?).ok()?),
            SqlType::Int => SqlValue::I32(i32::try_from(integer()?).ok()?),
            SqlType::BigInt => SqlValue::I64(integer()?),
            SqlType::Real => SqlValue::F32(text.parse().ok()?),
            SqlType::Float => SqlValue::F64(text.parse().ok()?),
            SqlType::Text => SqlValue::String(string()?),
            SqlType::Decimal { .. } | SqlType::Money | SqlType::SmallMoney => {
                let (int, fraction) = text.split_once('.').unwrap_or((text, ""));
                if fraction.len() > 38 || !fraction.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                SqlValue::Numeric {
                    value: format!("{int}{fraction}").parse().ok()?,
                    scale: fraction.len() as u8,
                }
            }
            _ => return None,
        })
    }

    /// `DECIMAL_DIGITS`: the scale of exact numbers and fractional seconds, `None` for
    /// types that have none (strings, binaries, floats, `date`).
    pub fn jdbc_scale(&self) -> Option<i32> {
        match self.sql_type {
            SqlType::Bit
            | SqlType::TinyInt
            | SqlType::SmallInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::SmallDateTime => Some(0),
            SqlType::Decimal { scale, .. } => Some(scale as i32),
            SqlType::Money | SqlType::SmallMoney => Some(4),
            SqlType::DateTime => Some(3),
            SqlType::Time { scale }
            | SqlType::DateTime2 { scale }
            | SqlType::DateTimeOffset { scale } => Some(scale as i32),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(sql_type: SqlType, catalog: ColumnCatalog) -> Column {
        Column {
            name: "c".into(),
            sql_type,
            optional: true,
            catalog,
            mask: None,
        }
    }

    fn named(type_name: &str, max_length: i16) -> ColumnCatalog {
        ColumnCatalog {
            type_name: type_name.into(),
            max_length,
            ..ColumnCatalog::default()
        }
    }

    /// `(jdbcType, typeName, length, scale)` as Debezium's schema-change events report them.
    fn described(column: &Column) -> (i32, String, i32, Option<i32>) {
        (
            column.jdbc_type(),
            column.jdbc_type_name(),
            column.jdbc_length(),
            column.jdbc_scale(),
        )
    }

    #[test]
    fn columns_are_described_as_the_jdbc_driver_reports_them() {
        let identity = ColumnCatalog {
            identity: true,
            ..named("int", 4)
        };
        // Debezium's documented example: `id int identity` → 4, "int identity", 10, 0.
        assert_eq!(
            described(&column(SqlType::Int, identity)),
            (4, "int identity".into(), 10, Some(0))
        );
        assert_eq!(
            described(&column(SqlType::Text, named("varchar", 255))),
            (12, "varchar".into(), 255, None)
        );
        assert_eq!(
            described(&column(SqlType::Text, named("nvarchar", 510))),
            (-9, "nvarchar".into(), 255, None)
        );
        assert_eq!(
            described(&column(SqlType::Text, named("nvarchar", -1))),
            (-9, "nvarchar".into(), i32::MAX, None)
        );
        assert_eq!(
            described(&column(
                SqlType::Decimal {
                    precision: 12,
                    scale: 2
                },
                named("decimal", 9)
            )),
            (3, "decimal".into(), 12, Some(2))
        );
        assert_eq!(
            described(&column(
                SqlType::DateTime2 { scale: 7 },
                named("datetime2", 8)
            )),
            (93, "datetime2".into(), 27, Some(7))
        );
        assert_eq!(
            described(&column(
                SqlType::DateTime2 { scale: 0 },
                named("datetime2", 6)
            )),
            (93, "datetime2".into(), 19, Some(0))
        );
        assert_eq!(
            described(&column(
                SqlType::DateTimeOffset { scale: 7 },
                named("datetimeoffset", 10)
            )),
            (-155, "datetimeoffset".into(), 34, Some(7))
        );
        assert_eq!(
            described(&column(SqlType::Time { scale: 3 }, named("time", 4))),
            (92, "time".into(), 12, Some(3))
        );
        assert_eq!(
            described(&column(
                SqlType::UniqueIdentifier,
                named("uniqueidentifier", 16)
            )),
            (1, "uniqueidentifier".into(), 36, None)
        );
        assert_eq!(
            described(&column(SqlType::Money, named("money", 8))),
            (3, "money".into(), 19, Some(4))
        );
        assert_eq!(
            described(&column(SqlType::Binary, named("binary", 16))),
            (-2, "binary".into(), 16, None)
        );
        // Defaults as Debezium parses them; expressions give none.
        let with_default = |sql_type: SqlType, default: &str| {
            column(
                sql_type,
                ColumnCatalog {
                    default: Some(default.into()),
                    ..ColumnCatalog::default()
                },
            )
            .default_value()
        };
        assert_eq!(with_default(SqlType::Int, "((0))"), Some(SqlValue::I32(0)));
        assert_eq!(
            with_default(SqlType::BigInt, "((-42))"),
            Some(SqlValue::I64(-42))
        );
        assert_eq!(
            with_default(SqlType::Bit, "((1))"),
            Some(SqlValue::Bit(true))
        );
        assert_eq!(
            with_default(SqlType::Text, "(N'it''s new')"),
            Some(SqlValue::String("it's new".into()))
        );
        assert_eq!(
            with_default(
                SqlType::Decimal {
                    precision: 12,
                    scale: 2
                },
                "((1.50))"
            ),
            Some(SqlValue::Numeric {
                value: 150,
                scale: 2
            })
        );
        assert_eq!(with_default(SqlType::DateTime, "(getdate())"), None);
        assert_eq!(with_default(SqlType::Int, "(NULL)"), None);
        // Without a catalog (fixtures), the mapping names the type.
        assert_eq!(
            column(SqlType::Float, ColumnCatalog::default()).jdbc_type_name(),
            "float"
        );
    }
}
