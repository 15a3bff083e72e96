--- Switchyard for Neovim: the `:Switchyard` subcommands, the report and transcript
--- buffers, and the statusline component. The language client lives in
--- `switchyard.lsp`, the options in `switchyard.config`. See `:help switchyard`.
local config = require('switchyard.config')
local lsp = require('switchyard.lsp')

local M = {}

local api = vim.api
local levels = vim.log.levels
local notify = lsp.notify

--- Configuration problems already reported, so each is said once.
local reported = {}

--- Reports new configuration problems; returns the options in force.
local function options()
  local cfg, errors = config.get()
  for _, message in ipairs(errors) do
    if not reported[message] then
      reported[message] = true
      notify(message, levels.ERROR)
    end
  end
  return cfg
end

--- Optional: `require('switchyard').setup(opts)`; `vim.g.switchyard` works as well.
function M.setup(opts)
  for _, message in ipairs(config.setup(opts)) do
    notify(message, levels.ERROR)
  end
end

--- The statusline component: busy lanes such as `Q 12/40 · G 1`, empty when idle.
--- `User SwitchyardStatus` fires when it changes.
function M.status()
  return lsp.status()
end

--- The fuller statusline component: the busy lanes, then the chat's session usage and
--- cost (`Q 2 · G 1 │ 12,340 in, 456 out, $0.0123`). Empty when there is nothing to say.
function M.statusline()
  local lanes = lsp.status()
  local chat = require('switchyard.chat').status()
  if lanes ~= '' and chat ~= '' then
    return lanes .. ' │ ' .. chat
  end
  return lanes .. chat
end

-- ---------------------------------------------------------------------------------------
-- Scratch buffers

local buffers = {}

--- The scratch buffer called `name` (created on first use), with `filetype`.
local function scratch(name, filetype)
  local bufnr = buffers[name]
  if bufnr and api.nvim_buf_is_valid(bufnr) then
    return bufnr
  end
  bufnr = api.nvim_create_buf(false, true) -- buftype=nofile, bufhidden=hide, noswapfile
  api.nvim_buf_set_name(bufnr, name)
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].filetype = filetype
  buffers[name] = bufnr
  return bufnr
end

local function set_lines(bufnr, first, last, lines)
  vim.bo[bufnr].modifiable = true
  api.nvim_buf_set_lines(bufnr, first, last, false, lines)
  vim.bo[bufnr].modifiable = false
end

--- Shows `bufnr` in a window, as the `window` option says, unless it is already visible.
local function show(bufnr)
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    return win
  end
  local how = options().window
  local command = ({
    split = 'sbuffer',
    vsplit = 'vertical sbuffer',
    tab = 'tab sbuffer',
    current = 'buffer',
  })[how]
  vim.cmd(('%s %d'):format(command, bufnr))
  return api.nvim_get_current_win()
end

local function split_lines(text)
  return vim.split(text or '', '\n', { plain = true })
end

--- The buffer `name` if it exists (for tests and scripts): `switchyard://analysis`,
--- `switchyard://ask`.
function M.buffer(name)
  local bufnr = buffers[name]
  if bufnr and api.nvim_buf_is_valid(bufnr) then
    return bufnr
  end
  return nil
end

local error_text = lsp.error_text

local function cancelled(err)
  return type(err) == 'table' and err.code == lsp.errors.request_cancelled
end

-- ---------------------------------------------------------------------------------------
-- analyze

--- Runs `switchyard.analyzeWorkspace` and opens the Markdown report in a scratch buffer.
--- Progress arrives as `$/progress`. `User SwitchyardAnalyzeDone` fires when it is over.
function M.analyze()
  lsp.with_client(0, function(client)
    lsp.execute(client, lsp.commands.analyze_workspace, nil, function(err, result)
      if err then
        if cancelled(err) then
          notify('the analysis was cancelled')
        else
          notify('the analysis failed: ' .. error_text(err), levels.ERROR)
        end
      elseif type(result) ~= 'table' or type(result.markdown) ~= 'string' then
        notify('the analysis returned no report', levels.ERROR)
      else
        local bufnr = scratch('switchyard://analysis', 'markdown')
        set_lines(bufnr, 0, -1, split_lines((result.markdown:gsub('\n$', ''))))
        show(bufnr)
      end
      lsp.fire('SwitchyardAnalyzeDone')
    end)
  end, function()
    lsp.fire('SwitchyardAnalyzeDone')
  end)
end

-- ---------------------------------------------------------------------------------------
-- ask

--- Characters in `text` counted in an LSP position encoding.
local function encoded_length(text, encoding)
  if encoding == 'utf-8' then
    return #text
  end
  local n = 0
  for i = 1, #text do
    local byte = text:byte(i)
    if byte < 0x80 or byte >= 0xC0 then -- not a continuation byte
      n = n + ((encoding == 'utf-16' and byte >= 0xF0) and 2 or 1)
    end
  end
  return n
end

--- What the user is looking at: the file, and the selected lines when there is a range.
--- (The single place that knows the shape of `switchyard/ask`'s `context`.)
function M._context(client, bufnr, range)
  if not lsp.is_file_buffer(bufnr) then
    return nil
  end
  local context = { file = vim.uri_from_bufnr(bufnr) }
  if range then
    local first, last = range[1], range[2]
    local last_line = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ''
    context.selection = {
      start = { line = first - 1, character = 0 },
      ['end'] = {
        line = last - 1,
        character = encoded_length(last_line, client.offset_encoding or 'utf-16'),
      },
    }
  end
  return context
end

--- The transcript of the current ask: where streamed text goes.
local transcript = { text = {}, streaming = false }

local function transcript_buffer()
  return scratch('switchyard://ask', 'markdown')
end

local function to_buffer()
  return options().ask_output == 'buffer'
end

--- Appends `text` to the transcript, continuing the last line.
local function append_text(text)
  table.insert(transcript.text, text)
  if not to_buffer() then
    return
  end
  local bufnr = transcript_buffer()
  local pieces = split_lines(text)
  if not transcript.streaming then
    -- A new paragraph: a blank line, then the line the text streams into.
    set_lines(bufnr, -1, -1, { '', '' })
    transcript.streaming = true
  end
  local last = api.nvim_buf_line_count(bufnr)
  local current = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ''
  pieces[1] = current .. pieces[1]
  set_lines(bufnr, last - 1, last, pieces)
end

--- Appends whole lines to the transcript (tool calls, outcome).
local function append_lines(lines)
  transcript.streaming = false
  if to_buffer() then
    set_lines(transcript_buffer(), -1, -1, lines)
  end
end

local function content_text(content)
  if type(content) == 'string' then
    return content
  elseif type(content) == 'table' then
    if type(content.text) == 'string' then
      return content.text
    end
    return '[' .. tostring(content.type or 'content') .. ']'
  end
  return ''
end

local status_marks = { completed = '✓', failed = '✗', cancelled = '⊘' }

--- Handles `switchyard/sessionUpdate` (ACP `session/update` kinds).
function M._session_update(params)
  local chat = require('switchyard.chat')
  if chat.accepts(params) then
    chat.update(params)
    return
  end
  local update = type(params.update) == 'table' and params.update or params
  local kind = update.sessionUpdate or update.kind
  if kind == 'agent_message_chunk' then
    append_text(content_text(update.content))
  elseif kind == 'tool_call' then
    local line = ('- `%s`'):format(update.title or update.toolCallId or 'tool')
    if update.lane then
      line = line .. (' · %s'):format(update.lane)
    end
    append_lines({ '', line })
    if not to_buffer() then
      notify('tool: ' .. (update.title or 'tool'))
    end
  elseif kind == 'tool_call_update' and status_marks[update.status] then
    local line = ('  %s %s'):format(status_marks[update.status], update.status)
    if update.durationMs then
      line = line .. (' in %d ms'):format(update.durationMs)
    end
    if update.error then
      line = line .. ': ' .. tostring(update.error)
    end
    append_lines({ line })
  end
end

--- Sends `prompt` to the agent (`switchyard/ask`) with the current file, and the lines of
--- `opts.range = {first, last}` as the selection, as context. Without a prompt, asks for
--- one. The answer streams into `switchyard://ask` (or vim.notify); edits arrive as
--- `workspace/applyEdit` and land, unsaved, in the buffers. `User SwitchyardAskDone`
--- fires when the request is over.
function M.ask(prompt, opts)
  config.validate('prompt', prompt, 'string', true)
  config.validate('opts', opts, 'table', true)
  opts = opts or {}
  if prompt == nil or vim.trim(prompt) == '' then
    vim.ui.input({ prompt = 'Ask Switchyard: ' }, function(input)
      if input and vim.trim(input) ~= '' then
        M.ask(input, opts)
      end
    end)
    return
  end
  local bufnr = api.nvim_get_current_buf()
  lsp.with_client(bufnr, function(client)
    local params = { prompt = prompt, context = M._context(client, bufnr, opts.range) }
    if opts.session then
      params.sessionId = opts.session
    end
    transcript.text, transcript.streaming = {}, false
    if to_buffer() then
      local header = { '## ' .. prompt:gsub('\n', ' ') }
      if params.context then
        local name = vim.fn.fnamemodify(api.nvim_buf_get_name(bufnr), ':~:.')
        local where = opts.range and ('%s:%d-%d'):format(name, opts.range[1], opts.range[2]) or name
        table.insert(header, '_' .. where .. '_')
      end
      local tbuf = transcript_buffer()
      local existing = api.nvim_buf_line_count(tbuf) > 1
        or (api.nvim_buf_get_lines(tbuf, 0, 1, false)[1] or '') ~= ''
      if existing then
        table.insert(header, 1, '')
        set_lines(tbuf, -1, -1, header)
      else
        set_lines(tbuf, 0, -1, header)
      end
      -- Show it without leaving the file being asked about.
      local win = api.nvim_get_current_win()
      show(tbuf)
      if api.nvim_win_is_valid(win) then
        api.nvim_set_current_win(win)
      end
    end
    lsp.request(client, lsp.methods.ask, params, function(err, result)
      if err then
        local message = cancelled(err) and 'cancelled' or ('failed: ' .. error_text(err))
        if type(err) == 'table' and err.code == lsp.errors.method_not_found then
          message = ('failed: this server does not know %s; update switchyard'):format(lsp.methods.ask)
        end
        append_lines({ '', '**' .. message .. '**' })
        notify('ask ' .. message, cancelled(err) and levels.INFO or levels.ERROR)
      else
        result = type(result) == 'table' and result or {}
        local final = result.text or result.answer or result.message
        if #transcript.text == 0 and type(final) == 'string' then
          append_text(final)
        end
        local stop = result.stopReason and (' (%s)'):format(result.stopReason) or ''
        append_lines({ '', '**done**' .. stop })
        if not to_buffer() then
          notify(table.concat(transcript.text) .. stop)
        end
      end
      lsp.fire('SwitchyardAskDone')
    end, bufnr)
  end, function()
    lsp.fire('SwitchyardAskDone')
  end)
end

-- ---------------------------------------------------------------------------------------
-- cancel, stats, deadletters, restart

--- Cancels a lane task (a number), a session (a string), or with no id everything.
function M.cancel(id)
  lsp.with_client(0, function(client)
    local argument = id ~= nil and { id = id } or nil
    lsp.execute(client, lsp.commands.cancel, argument, function(err, result)
      if err then
        notify('cancel failed: ' .. error_text(err), levels.ERROR)
      elseif type(result) == 'table' then
        notify(('cancelled %d task(s), %d command(s)'):format(result.tasks or 0, result.commands or 0))
      end
    end)
  end)
end

local function duration_us(us)
  if type(us) ~= 'number' then
    return '-'
  elseif us < 1000 then
    return ('%dµs'):format(us)
  elseif us < 1000000 then
    return ('%.1fms'):format(us / 1000)
  end
  return ('%.2fs'):format(us / 1000000)
end

local function percentiles(h)
  if type(h) ~= 'table' or (h.count or 0) == 0 then
    return '-'
  end
  return duration_us(h.p50Us) .. ' / ' .. duration_us(h.p99Us)
end

--- The lines of the stats window for a `switchyard.queueStats` snapshot.
function M._render_stats(stats)
  local pattern = '%-9s %6s %7s %6s %6s %7s %5s  %s %s'
  local function row(lane, queued, running, done, failed, retried, dead, wait, run)
    -- Padded by display width: "µs" is one column but two bytes.
    wait = wait .. (' '):rep(math.max(17 - vim.fn.strdisplaywidth(wait), 1))
    return (pattern:format(lane, queued, running, done, failed, retried, dead, wait, run):gsub('%s+$', ''))
  end
  local lines = {
    'Switchyard lanes',
    '',
    row('lane', 'queued', 'running', 'done', 'failed', 'retried', 'dead', 'wait p50 / p99', 'run p50 / p99'),
  }
  for _, l in ipairs(stats.lanes or {}) do
    table.insert(
      lines,
      row(
        tostring(l.lane),
        l.queued or 0,
        l.running or 0,
        l.completed or 0,
        (l.failed or 0) + (l.timedOut or 0),
        l.retried or 0,
        l.deadLettered or 0,
        percentiles(l.queueWait),
        percentiles(l.runTime)
      )
    )
  end
  table.insert(lines, '')
  table.insert(
    lines,
    ('dead letters %d of %d · running %d'):format(
      stats.deadLetters or 0,
      stats.deadLetterCapacity or 0,
      stats.globalRunning or 0
    )
  )
  if type(stats.counters) == 'table' and next(stats.counters) then
    local names = vim.tbl_keys(stats.counters)
    table.sort(names)
    local parts = {}
    for _, name in ipairs(names) do
      table.insert(parts, ('%s %s'):format(name, tostring(stats.counters[name])))
    end
    table.insert(lines, table.concat(parts, ' · '))
  end
  return lines
end

--- Shows the queue stats (`switchyard.queueStats`) in a floating window.
function M.stats()
  lsp.with_client(0, function(client)
    lsp.execute(client, lsp.commands.queue_stats, nil, function(err, result)
      if err then
        notify('stats failed: ' .. error_text(err), levels.ERROR)
        return
      end
      local lines = M._render_stats(type(result) == 'table' and result or {})
      vim.lsp.util.open_floating_preview(lines, '', {
        border = 'rounded',
        focus_id = 'switchyard-stats',
      })
      lsp.fire('SwitchyardStats')
    end)
  end)
end

--- Lists the dead letters and offers to retry one (with `vim.ui.select`).
function M.deadletters()
  lsp.with_client(0, function(client)
    lsp.execute(client, lsp.commands.dead_letters, nil, function(err, letters)
      if err then
        notify('dead letters failed: ' .. error_text(err), levels.ERROR)
        return
      end
      if type(letters) ~= 'table' or #letters == 0 then
        notify('no dead letters')
        return
      end
      vim.ui.select(letters, {
        prompt = 'Retry a dead letter:',
        format_item = function(l)
          return ('#%s %s · %s · %s · %d attempt(s) · %s'):format(
            tostring(l.id),
            tostring(l.lane),
            tostring(l.name),
            tostring(l.session or '-'),
            l.attempts or 0,
            tostring(l.error)
          )
        end,
      }, function(letter)
        if not letter then
          return
        end
        lsp.execute(client, lsp.commands.retry_dead_letter, { id = letter.id }, function(e, r)
          if e then
            notify('retry failed: ' .. error_text(e), levels.ERROR)
          else
            notify(('dead letter #%s resubmitted as task %s'):format(tostring(letter.id), tostring(r and r.taskId)))
          end
        end)
      end)
    end)
  end)
end

--- Stops the language server(s) and starts again for the current buffer.
function M.restart()
  lsp.stop_all(3000)
  if lsp.with_client(0, function() end) then
    notify('restarted')
  end
end

-- ---------------------------------------------------------------------------------------
-- MCP

--- The lines of the MCP window for a `switchyard.mcpStatus` answer.
function M._render_mcp(status)
  local servers = type(status) == 'table' and status.servers or {}
  local lines = { '# MCP servers', '' }
  if #servers == 0 then
    table.insert(lines, 'No MCP server is configured (`[mcp_servers.NAME]` in your config file).')
    return lines
  end
  for _, server in ipairs(servers) do
    local tools = server.tools or {}
    table.insert(
      lines,
      ('## %s · %s · %d tool%s · %d restart%s'):format(
        tostring(server.name),
        tostring(server.state),
        #tools,
        #tools == 1 and '' or 's',
        server.restarts or 0,
        server.restarts == 1 and '' or 's'
      )
    )
    if type(server.lastError) == 'string' then
      table.insert(lines, 'last error: ' .. server.lastError:gsub('\n', ' '))
    end
    for _, tool in ipairs(tools) do
      local flags = {}
      if tool.readOnly then
        table.insert(flags, 'read-only')
      end
      if tool.destructive then
        table.insert(flags, 'destructive')
      end
      local description = vim.split(tostring(tool.description or ''), '\n', { plain = true })[1]
      table.insert(
        lines,
        ('- `%s`%s%s'):format(
          tostring(tool.name),
          #flags > 0 and (' (' .. table.concat(flags, ', ') .. ')') or '',
          description ~= '' and (' — ' .. description) or ''
        )
      )
    end
    table.insert(lines, '')
  end
  return lines
end

--- Shows the MCP servers (`switchyard.mcpStatus`): state, tools, last error. With
--- `start`, servers not running yet are started first.
function M.mcp(start)
  lsp.with_client(0, function(client)
    lsp.execute(client, lsp.commands.mcp_status, start and { start = true } or nil, function(err, result)
      if err then
        notify('MCP status failed: ' .. error_text(err), levels.ERROR)
        return
      end
      local bufnr = scratch('switchyard://mcp', 'markdown')
      set_lines(bufnr, 0, -1, M._render_mcp(result))
      show(bufnr)
      lsp.fire('SwitchyardMcp')
    end)
  end)
end

-- ---------------------------------------------------------------------------------------
-- :Switchyard

local subcommands = {
  analyze = function()
    M.analyze()
  end,
  ask = function(args, opts)
    local range = (opts.range or 0) > 0 and { opts.line1, opts.line2 } or nil
    M.ask(args, { range = range })
  end,
  cancel = function(args)
    local id = nil
    if args ~= '' then
      id = tonumber(args) or args
    end
    M.cancel(id)
  end,
  stats = function()
    M.stats()
  end,
  deadletters = function()
    M.deadletters()
  end,
  restart = function()
    M.restart()
  end,
  chat = function(args)
    local chat = require('switchyard.chat')
    if args == 'new' then
      chat.new()
    else
      chat.open()
      if args ~= '' then
        chat.send(args)
      end
    end
  end,
  stop = function()
    require('switchyard.chat').stop()
  end,
  sessions = function()
    require('switchyard.chat').sessions()
  end,
  model = function(args)
    require('switchyard.chat').pick_model(args)
  end,
  rewind = function()
    require('switchyard.chat').rewind()
  end,
  mcp = function(args)
    M.mcp(args == 'start')
  end,
  review = function(args)
    if args == '' then
      notify('review: ' .. lsp.review())
    elseif args == 'changes' or args == 'off' then
      lsp.set_review(args)
      notify('review: ' .. args)
    else
      notify(('review takes "changes" or "off", not `%s`'):format(args), levels.ERROR)
    end
  end,
}

--- The subcommand names, sorted.
function M.subcommands()
  local names = vim.tbl_keys(subcommands)
  table.sort(names)
  return names
end

--- Runs `:Switchyard {subcommand} [args]`.
function M.command(opts)
  options()
  local name, rest = (opts.args or ''):match('^%s*(%S*)%s*(.-)%s*$')
  local run = subcommands[name]
  if not run then
    local message = name == '' and 'a subcommand is needed' or ('unknown subcommand `%s`'):format(name)
    notify(message .. '; use one of: ' .. table.concat(M.subcommands(), ', '), levels.ERROR)
    return
  end
  run(rest, opts)
end

--- Completion for `:Switchyard`: the subcommands, in the first argument only.
function M.complete(arglead, cmdline, cursorpos)
  local before = cmdline:sub(1, cursorpos)
  -- Drop a leading range and the command name; complete only the first word after it.
  local args = before:gsub("^[%s:]*[%d,.'<>$%%]*%s*%a+!?%s*", '', 1)
  if args:find('%s') then
    return {}
  end
  return vim.tbl_filter(function(name)
    return name:sub(1, #arglead) == arglead
  end, M.subcommands())
end

return M
