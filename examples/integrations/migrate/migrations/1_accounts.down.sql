DROP TABLE migrate_example_accounts;
