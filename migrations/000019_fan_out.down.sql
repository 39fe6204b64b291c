DROP TABLE baton.fan_outs;
