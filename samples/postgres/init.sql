-- docker-compose.yml's `postgres` service runs this at its first start: the sample
-- tables `sluice capture` (docker/capture-postgres.toml) streams as Debezium events.
CREATE TABLE customers (
    id serial PRIMARY KEY,
    first_name varchar(255) NOT NULL,
    last_name varchar(255) NOT NULL,
    email varchar(255) NOT NULL UNIQUE
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    order_date date NOT NULL,
    purchaser int NOT NULL REFERENCES customers (id),
    quantity int NOT NULL,
    price numeric(10, 2) NOT NULL
);
INSERT INTO customers (first_name, last_name, email) VALUES
    ('Sally', 'Thomas', 'sally.thomas@acme.com'),
    ('George', 'Bailey', 'gbailey@foobar.com'),
    ('Edward', 'Walker', 'ed@walker.com'),
    ('Anne', 'Kretchmar', 'annek@noanswer.org');
INSERT INTO orders (order_date, purchaser, quantity, price) VALUES
    ('2016-01-16', 1, 1, 10.50),
    ('2016-01-17', 2, 2, 3.99),
    ('2016-02-19', 2, 2, 120.00);
-- The capture role: logical replication needs REPLICATION; the snapshot needs SELECT.
CREATE ROLE sluice LOGIN REPLICATION PASSWORD 'sluice';
GRANT SELECT ON customers, orders TO sluice;
-- Created here (as the tables' owner) so the capture role needs no CREATE privilege.
CREATE PUBLICATION dbz_publication FOR TABLE customers, orders;
