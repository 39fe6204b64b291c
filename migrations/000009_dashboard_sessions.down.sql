DROP TABLE baton.dashboard_sessions;
