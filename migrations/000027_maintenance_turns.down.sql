DROP TABLE baton.maintenance_turns;
