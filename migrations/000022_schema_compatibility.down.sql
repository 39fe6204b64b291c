DROP FUNCTION baton.compatible_since();
