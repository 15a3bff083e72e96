-- :Switchyard analyze on the fixture workspace with the real server: progress begin,
-- report and end arrive through this Neovim's progress mechanism, the Markdown report opens
-- in a scratch buffer (the same text the server wrote to .switchyard/analysis.md), and
-- then stats and cancel answer while the lanes go idle again.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

T.run('analyze', function()
  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  vim.cmd('edit src/lib.rs')
  local progress = T.record_progress()
  local statuses = {}
  vim.api.nvim_create_autocmd('User', {
    pattern = 'SwitchyardStatus',
    callback = function()
      table.insert(statuses, require('switchyard').status())
    end,
  })
  T.on_failure('progress events (' .. tostring(T.progress_mechanism) .. ')', function()
    return vim.inspect(progress)
  end)
  T.on_failure('status() after each laneStatus', function()
    return vim.inspect(statuses)
  end)
  T.on_failure('buffers', function()
    local out = {}
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      local name = vim.api.nvim_buf_get_name(b)
      table.insert(out, ('%d %s [%s/%s]'):format(b, name, vim.bo[b].buftype, vim.bo[b].filetype))
    end
    return table.concat(out, '\n')
  end)

  T.wait_event('SwitchyardAnalyzeDone', 40000, function()
    vim.cmd('Switchyard analyze')
    T.record_servers()
  end)

  local lsp = require('switchyard.lsp')
  local client = lsp.clients()[1]
  T.check(client, 'a switchyard client runs')
  T.eq(client.config.root_dir, (vim.uv or vim.loop).fs_realpath(T.workspace), 'the root is the fixture workspace')
  T.check(vim.lsp.buf_is_attached(vim.fn.bufnr('src/lib.rs'), client.id), 'the open file is attached')

  -- The report buffer.
  local report = require('switchyard').buffer('switchyard://analysis')
  T.check(report, 'no switchyard://analysis buffer (see the notifications above)')
  local lines = T.lines(report)
  T.on_failure('report buffer', function()
    return table.concat(lines, '\n')
  end)
  T.eq(vim.bo[report].buftype, 'nofile', 'report buftype')
  T.eq(vim.bo[report].filetype, 'markdown', 'report filetype')
  T.check(vim.fn.bufwinid(report) ~= -1, 'the report is shown in a window')
  local written = T.read(T.workspace .. '/.switchyard/analysis.md')
  T.check(written, 'the server wrote .switchyard/analysis.md')
  T.eq(table.concat(lines, '\n'), (written:gsub('\n$', '')), 'the buffer holds the report the server wrote')
  local text = table.concat(lines, '\n')
  T.check(text:find('^#'), 'the report starts with a Markdown heading')
  T.check(text:find('Rust', 1, true), 'the report names Rust')
  T.check(text:find('Python', 1, true), 'the report names Python')

  -- Progress: begin, at least one report, end, for the analysis.
  T.wait(3000, function()
    return #vim.tbl_filter(function(e)
      return e.kind == 'end'
    end, progress) > 0
  end, 'progress end')
  local kinds = {}
  for _, event in ipairs(progress) do
    kinds[event.kind] = (kinds[event.kind] or 0) + 1
  end
  T.log('progress kinds: %s', vim.inspect(kinds))
  T.eq(progress[1].kind, 'begin', 'progress begins with begin')
  T.check(progress[1].title and progress[1].title:lower():find('analy'), 'begin names the analysis')
  T.check((kinds.report or 0) >= 1, 'at least one progress report')
  T.eq(progress[#progress].kind, 'end', 'progress ends with end')
  local notified = vim.tbl_map(function(n)
    return n.message
  end, T.notifications)
  T.check(
    #vim.tbl_filter(function(m)
      return m:find('^switchyard: .*nalyz.*…$')
    end, notified) == 1,
    'vim.notify at the beginning'
  )
  T.check(
    #vim.tbl_filter(function(m)
      return m:find('^switchyard: .*nalyz.*: ')
    end, notified) >= 1,
    'vim.notify at the end'
  )

  -- Stats answer, in a float.
  T.wait_event('SwitchyardStats', 10000, function()
    vim.cmd('Switchyard stats')
  end)
  local float_text
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= '' then
      float_text = table.concat(T.lines(vim.api.nvim_win_get_buf(win)), '\n')
    end
  end
  T.log('stats float:\n%s', tostring(float_text))
  T.check(float_text and float_text:find('\nquery ', 1, true), 'the stats float lists the query lane')

  -- Cancel with nothing running, and the lanes go idle.
  vim.cmd('Switchyard cancel')
  T.wait(5000, function()
    local last = T.notifications[#T.notifications]
    return last and last.message:find('cancelled %d+ task')
  end, 'the cancel answer')
  T.wait(5000, function()
    return #statuses > 0 and require('switchyard').status() == ''
  end, 'a lane status, and idle lanes at the end')

  -- No dead letters after a clean run.
  vim.cmd('Switchyard deadletters')
  T.wait(5000, function()
    local last = T.notifications[#T.notifications]
    return last and last.message == 'switchyard: no dead letters'
  end, 'the dead letter answer')

  -- Restart: a new client for the same root, with the open file attached again.
  local old_id = client.id
  vim.cmd('Switchyard restart')
  T.record_servers()
  T.eq(vim.lsp.get_client_by_id(old_id), nil, 'the old client is gone')
  T.wait(10000, function()
    local c = lsp.clients()[1]
    return c and c.id ~= old_id and c.initialized
  end, 'a new, initialized client')
  local new = lsp.clients()[1]
  T.eq(#lsp.clients(), 1, 'one client after the restart')
  T.eq(new.config.root_dir, client.config.root_dir, 'the same root after the restart')
  T.check(vim.lsp.buf_is_attached(vim.fn.bufnr('src/lib.rs'), new.id), 'the file is attached again')
end)
