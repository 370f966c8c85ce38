CREATE TABLE migrate_example_accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
