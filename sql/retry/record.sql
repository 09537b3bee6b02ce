-- A run's retry files and their requests, from the registered incoming_retry_files and
-- incoming_retry_requests (columns as the tables').
INSERT INTO retry_batches BY NAME SELECT * FROM incoming_retry_files;
INSERT INTO retry_requests BY NAME SELECT * FROM incoming_retry_requests;
