-- The sample database for `docker compose up`: testDB with dbo.customers and dbo.orders
-- (the tables of samples/README.md), CDC enabled on both, and a few rows. Run once by
-- the compose service `mssql-init` (sqlcmd); safe to run again.
IF DB_ID(N'testDB') IS NULL CREATE DATABASE testDB;
GO
USE testDB;
GO
-- One consistent snapshot of every table (sluice reads under SNAPSHOT when allowed).
ALTER DATABASE testDB SET ALLOW_SNAPSHOT_ISOLATION ON;
GO
IF OBJECT_ID(N'dbo.customers') IS NULL
CREATE TABLE dbo.customers (
    id             int              NOT NULL PRIMARY KEY,
    first_name     nvarchar(100)    NOT NULL,
    last_name      nvarchar(100)    NOT NULL,
    email          nvarchar(255)    NULL,
    credit_limit   decimal(12,2)    NULL,
    birth_date     date             NULL,
    created_at     datetime2(3)     NOT NULL,
    updated_at     datetime2(7)     NOT NULL,
    customer_guid  uniqueidentifier NOT NULL,
    is_active      bit              NOT NULL
);
IF OBJECT_ID(N'dbo.orders') IS NULL
CREATE TABLE dbo.orders (
    id           int           NOT NULL PRIMARY KEY,
    customer_id  int           NOT NULL,
    order_date   date          NOT NULL,
    total        decimal(12,2) NOT NULL,
    status       nvarchar(20)  NOT NULL
);
GO
IF (SELECT is_cdc_enabled FROM sys.databases WHERE name = N'testDB') = 0
    EXEC sys.sp_cdc_enable_db;
GO
IF NOT EXISTS (SELECT 1 FROM cdc.change_tables WHERE capture_instance = N'dbo_customers')
    EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'customers', @role_name = NULL;
IF NOT EXISTS (SELECT 1 FROM cdc.change_tables WHERE capture_instance = N'dbo_orders')
    EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL;
GO
IF NOT EXISTS (SELECT 1 FROM dbo.customers)
BEGIN
    INSERT INTO dbo.customers VALUES
        (1001, N'Sally', N'Thomas', N'sally.thomas@example.com', 5000.00, '1985-03-14', '2024-01-05T09:30:00.125', '2026-11-01T12:00:00.1234567', '6F9619FF-8B86-D011-B42D-00C04FC964FF', 1),
        (1002, N'George', N'Bailey', N'gbailey@example.org', 1250.50, '1972-07-01', '2024-02-11T14:05:10.500', '2026-11-02T08:45:12.0000010', '0E984725-C51C-4BF4-9960-E1C80E27ABA0', 1),
        (1003, N'Edward', N'Walker', N'ed@walker.example.com', 0.00, NULL, '2024-03-20T18:00:00.000', '2026-11-03T23:59:59.9999999', '7C9E6679-7425-40DE-944B-E07FC1F90AE7', 0);
    INSERT INTO dbo.orders VALUES
        (9001, 1001, '2026-11-20', 74.70, N'NEW'),
        (9002, 1002, '2026-11-20', 11.50, N'NEW');
    -- Changes after the snapshot: streamed as c/u/d events.
    INSERT INTO dbo.customers VALUES
        (1004, N'Anne', N'Kretchmar', N'annek@noanswer.example.org', 320.00, '1999-12-31', SYSUTCDATETIME(), SYSUTCDATETIME(), 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 1);
    UPDATE dbo.customers SET email = N'sally.t@example.org', credit_limit = 7500.25, updated_at = SYSUTCDATETIME() WHERE id = 1001;
    UPDATE dbo.orders SET status = N'PAID' WHERE id = 9001;
    DELETE FROM dbo.orders WHERE id = 9002;
END
GO
