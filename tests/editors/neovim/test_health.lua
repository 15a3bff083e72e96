-- :checkhealth switchyard, read back from the health buffer: the binary and its version
-- are OK; the provider check says which variables are set without showing their values;
-- invalid options are errors naming the key.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

--- Runs :checkhealth switchyard and returns the lines of the buffer it opened.
local function checkhealth()
  vim.cmd('checkhealth switchyard')
  local lines = T.lines(0)
  T.log('checkhealth buffer:\n    %s', table.concat(lines, '\n    '))
  return lines
end

--- The lines matching all the (plain) needles.
local function matching(lines, ...)
  local needles = { ... }
  return vim.tbl_filter(function(line)
    for _, needle in ipairs(needles) do
      if not line:find(needle, 1, true) then
        return false
      end
    end
    return true
  end, lines)
end

T.run('health', function()
  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  local secret = 'sk-test-do-not-print-0123456789'
  vim.g.switchyard = {
    cmd_env = { OPENAI_API_KEY = secret, SWITCHYARD_PROVIDER = 'openai', SWITCHYARD_MODEL = 'mock' },
  }
  local lines = checkhealth()
  local text = table.concat(lines, '\n')
  local version = vim.trim(vim.fn.system({ 'switchyard', '--version' }))
  T.log('switchyard --version: %s', version)
  T.check(version:match('^switchyard %d+%.%d+'), 'switchyard --version answers')
  local exe = vim.fn.exepath('switchyard')

  T.check(#matching(lines, 'OK', 'options are valid') == 1, 'options OK')
  T.check(#matching(lines, 'OK', '`switchyard` found: ' .. exe) == 1, 'binary OK')
  T.check(#matching(lines, 'OK', 'version: ' .. version) == 1, 'version OK')
  T.check(#matching(lines, 'OK', 'provider: openai', 'OPENAI_API_KEY is set') == 1, 'provider OK')
  T.check(#matching(lines, 'OK', 'model: mock') == 1, 'model OK')
  T.check(not text:find(secret, 1, true), 'the API key is never shown')
  T.check(#matching(lines, 'chat layout: split; review: off') == 1, 'the chat and review settings')
  if vim.fn.has('nvim-0.10') == 1 then
    T.check(#matching(lines, 'OK', 'approvals and reviews wait for your answer') == 1, 'waiting answers OK')
  else
    T.check(#matching(lines, 'WARN', 'answers server requests before the handler returns') == 1, '0.7 says what it lacks')
  end
  T.eq(matching(lines, 'ERROR'), {}, 'no errors')

  -- Invalid options: errors naming the keys, and a missing binary.
  vim.g.switchyard = { cmdd = { 'x' }, window = 3, cmd = { T.tmp .. '/missing-switchyard', 'lsp' } }
  lines = checkhealth()
  T.check(#matching(lines, 'ERROR', 'unknown option `cmdd` (did you mean `cmd`?)') == 1, 'unknown key is an error')
  T.check(#matching(lines, 'ERROR', 'option `window` must be one of', 'got number') == 1, 'wrong type is an error')
  T.check(
    #matching(lines, 'ERROR', 'missing-switchyard` not found or not executable') == 1,
    'missing binary is an error'
  )
  T.check(#matching(lines, 'WARN', 'no model provider configured') == 1, 'no provider is a warning')
end)
