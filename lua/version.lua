-- baton_version: the version of this function library.
-- KEYS: none
-- ARGV: none
-- Returns: the version string the backend substituted at load time
--          ("<library version>:<hash of the library text>").
redis.register_function {
  function_name = 'baton_version',
  callback = function() return LIBRARY_VERSION end,
  flags = { 'no-writes', 'allow-stale' },
}
