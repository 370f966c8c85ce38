INSERT INTO migrate_example_accounts (email) VALUES ('ada@example.com'), ('grace@example.com');
