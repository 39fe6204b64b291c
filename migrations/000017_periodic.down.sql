DROP VIEW baton.periodic;
DROP TABLE baton.periodic_entries;
