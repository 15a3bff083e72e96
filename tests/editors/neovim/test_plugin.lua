-- The plugin without a server: it loads lazily, defines one command with completion and
-- <Plug> mappings but no keys, validates its options by name, renders lane status and
-- stats, reports a missing binary, and its help file is helptags-clean.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

T.run('plugin', function()
  -- plugin/switchyard.lua ran (the driver sources it) and loaded nothing else.
  T.eq(vim.g.loaded_switchyard, 1, 'plugin/switchyard.lua ran')
  for _, module in ipairs({ 'switchyard', 'switchyard.lsp', 'switchyard.config', 'switchyard.health' }) do
    T.eq(package.loaded[module], nil, module .. ' is not loaded at startup')
  end
  T.eq(vim.fn.exists(':Switchyard'), 2, ':Switchyard exists')
  T.eq(
    vim.fn.getcompletion('Switchyard ', 'cmdline'),
    {
      'analyze',
      'ask',
      'cancel',
      'chat',
      'deadletters',
      'mcp',
      'model',
      'restart',
      'review',
      'rewind',
      'sessions',
      'stats',
      'stop',
    },
    'subcommand completion'
  )
  T.eq(vim.fn.getcompletion('Switchyard st', 'cmdline'), { 'stats', 'stop' }, 'completion of a prefix')
  T.eq(vim.fn.getcompletion('Switchyard ask ', 'cmdline'), {}, 'no completion after the subcommand')

  -- <Plug> mappings, and no key mapped to them.
  for _, plug in ipairs({ 'Analyze', 'Ask', 'Cancel', 'Stats', 'DeadLetters', 'Restart' }) do
    T.check(vim.fn.maparg('<Plug>(Switchyard' .. plug .. ')', 'n') ~= '', '<Plug>(Switchyard' .. plug .. ') exists')
  end
  T.check(vim.fn.maparg('<Plug>(SwitchyardAsk)', 'x') ~= '', '<Plug>(SwitchyardAsk) exists in Visual mode')
  for _, mode in ipairs({ 'n', 'x', 'i' }) do
    for _, map in ipairs(vim.api.nvim_get_keymap(mode)) do
      local rhs = map.rhs or ''
      T.check(
        not (rhs:find('Switchyard') and not map.lhs:find('^<Plug>')),
        ('no default keymap: %s maps %s'):format(mode, map.lhs)
      )
    end
  end

  -- Options: unknown keys and wrong types are named; values of tables are not shown.
  local config = require('switchyard.config')
  vim.g.switchyard = {
    cmdd = { 'x' },
    window = 'float',
    cmd_env = { OPENAI_API_KEY = 42 },
    notify_progress = 'yes',
  }
  local cfg, errors = config.get()
  T.log('errors: %s', vim.inspect(errors))
  T.eq(errors, {
    'vim.g.switchyard: option `cmd_env` must be a table of string keys to string values, got table',
    'vim.g.switchyard: option `notify_progress` must be a boolean, got string',
    'vim.g.switchyard: option `window` must be one of "split", "vsplit", "tab", "current", got "float"',
    'vim.g.switchyard: unknown option `cmdd` (did you mean `cmd`?)',
  }, 'option errors')
  T.eq(cfg.window, 'split', 'an invalid option keeps its default')
  T.eq(cfg.cmd, { 'switchyard', 'lsp' }, 'default cmd')
  vim.g.switchyard = { window = 'tab' }
  require('switchyard').setup({ window = 'vsplit', bogus = true })
  cfg, errors = config.get()
  T.eq(cfg.window, 'vsplit', 'setup() overrides vim.g.switchyard')
  T.eq(#errors, 1, 'setup() errors are kept: ' .. vim.inspect(errors))
  T.check(errors[1]:find('unknown option `bogus`', 1, true), 'setup() names the unknown key')
  T.check(
    vim.tbl_contains(vim.tbl_map(function(n)
      return n.message
    end, T.notifications), 'switchyard: ' .. errors[1]),
    'setup() reports its errors'
  )
  require('switchyard').setup({})
  vim.g.switchyard = nil
  local ok, err = pcall(require('switchyard').ask, 42)
  T.check(not ok and tostring(err):find('prompt'), 'ask() validates its prompt: ' .. tostring(err))

  -- Unknown subcommands and a missing binary are reported, not thrown.
  vim.cmd('Switchyard frobnicate')
  local last = T.notifications[#T.notifications]
  T.check(last.message:find('unknown subcommand `frobnicate`', 1, true), 'unknown subcommand named')
  T.check(last.message:find('analyze, ask, cancel', 1, true), 'the subcommands are listed')
  vim.g.switchyard = { cmd = { T.tmp .. '/no-such-switchyard', 'lsp' } }
  vim.cmd('Switchyard stats')
  last = T.notifications[#T.notifications]
  T.check(last.level == vim.log.levels.ERROR and last.message:find('is not executable', 1, true), 'missing binary')
  vim.g.switchyard = nil

  -- The statusline component, from switchyard/laneStatus.
  local lsp = require('switchyard.lsp')
  local on_lane_status = lsp.handlers['switchyard/laneStatus']
  local function update(q, g)
    on_lane_status(nil, {
      lanes = {
        { lane = 'control', queued = 0, running = 0, done = 4, failed = 0, cancelled = 0, deadLettered = 0 },
        vim.tbl_extend('force', { lane = 'query', failed = 0, cancelled = 0, deadLettered = 0 }, q),
        { lane = 'execute', queued = 0, running = 0, done = 0, failed = 0, cancelled = 0, deadLettered = 0 },
        vim.tbl_extend('force', { lane = 'generate', failed = 0, cancelled = 0, deadLettered = 0 }, g),
      },
      deadLetters = 0,
    }, { client_id = 99 })
  end
  local status_events = 0
  vim.api.nvim_create_autocmd('User', {
    pattern = 'SwitchyardStatus',
    callback = function()
      status_events = status_events + 1
    end,
  })
  T.eq(require('switchyard').status(), '', 'status before any lane status')
  update({ queued = 0, running = 0, done = 5 }, { queued = 0, running = 0, done = 1 })
  T.eq(require('switchyard').status(), '', 'idle lanes')
  update({ queued = 40, running = 0, done = 5 }, { queued = 0, running = 1, done = 1 })
  T.eq(require('switchyard').status(), 'Q 0/40 · G 1', 'work queued')
  update({ queued = 12, running = 16, done = 17 }, { queued = 0, running = 1, done = 1 })
  T.eq(require('switchyard').status(), 'Q 12/40 · G 1', 'work under way')
  update({ queued = 0, running = 0, done = 45 }, { queued = 0, running = 0, done = 2 })
  T.eq(require('switchyard').status(), '', 'idle again')
  T.eq(status_events, 4, 'User SwitchyardStatus fired for each update')

  -- Every custom method and command of the server's ext.rs is mirrored in lsp.lua.
  local ext = T.read(T.dir .. '/../../../server/src/lsp/ext.rs')
  local mirrored = {}
  for _, name in pairs(lsp.methods) do
    mirrored[name] = true
  end
  for _, name in pairs(lsp.commands) do
    mirrored[name] = true
  end
  local in_ext = {}
  for name in (ext or ''):gmatch("const %u+: &'static str = \"([^\"]+)\"") do
    in_ext[name] = true
    T.check(mirrored[name], name .. ' (server/src/lsp/ext.rs) is mirrored in lua/switchyard/lsp.lua')
  end
  T.log('ext.rs names: %s', vim.inspect(vim.tbl_keys(in_ext)))
  T.log('lsp.lua names not (yet) in ext.rs: %s', vim.inspect(vim.tbl_filter(function(name)
    return not in_ext[name]
  end, vim.tbl_keys(mirrored))))

  -- Stats rendering (the example of docs/protocol.md, abridged).
  local rendered = require('switchyard')._render_stats({
    lanes = {
      {
        lane = 'query',
        queued = 12,
        running = 16,
        completed = 12,
        failed = 0,
        timedOut = 0,
        retried = 0,
        deadLettered = 0,
        queueWait = { count = 28, p50Us = 850, p90Us = 2100, p99Us = 4800, maxUs = 5200 },
        runTime = { count = 12, p50Us = 3100, p90Us = 9800, p99Us = 15000, maxUs = 15100 },
      },
    },
    globalRunning = 17,
    deadLetters = 1,
    deadLetterCapacity = 256,
    counters = { ['read_cache.hits'] = 118 },
  })
  T.log('stats: %s', vim.inspect(rendered))
  local text = table.concat(rendered, '\n')
  T.check(text:find('query%s+12%s+16%s+12'), 'stats row for query')
  T.check(text:find('850µs / 4.8ms', 1, true) and text:find('3.1ms / 15.0ms', 1, true), 'percentiles')
  T.check(text:find('dead letters 1 of 256', 1, true), 'dead letter line')

  -- The help file: helptags-clean (on a copy, so the repo gets no tags file).
  local doc = T.tmp .. '/doc'
  vim.fn.mkdir(doc, 'p')
  local source = vim.api.nvim_get_runtime_file('doc/switchyard.txt', false)[1]
  T.check(source, 'doc/switchyard.txt is on the runtimepath')
  vim.fn.writefile(vim.fn.readfile(source), doc .. '/switchyard.txt')
  local tagged, tag_err = pcall(vim.cmd, 'helptags ' .. doc)
  T.check(tagged, 'helptags: ' .. tostring(tag_err))
  local tags = vim.fn.readfile(doc .. '/tags')
  T.check(#tags > 20, 'tags written: ' .. #tags)
  local wanted = { ':Switchyard', 'switchyard-config', 'g:switchyard', 'switchyard.status()', 'switchyard-health' }
  for _, tag in ipairs(wanted) do
    T.check(
      #vim.tbl_filter(function(line)
        return vim.startswith(line, tag .. '\t')
      end, tags) == 1,
      'tag ' .. tag
    )
  end
end)
