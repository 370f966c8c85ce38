-- +goose Up
CREATE TABLE goose_example_orders (id serial PRIMARY KEY, total numeric NOT NULL);
INSERT INTO goose_example_orders (total) VALUES (9.99), (19.99);

-- +goose Down
DROP TABLE goose_example_orders;
