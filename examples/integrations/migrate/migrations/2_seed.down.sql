DELETE FROM migrate_example_accounts;
