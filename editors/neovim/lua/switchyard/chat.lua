--- The chat: a transcript buffer (`switchyard://chat`, Markdown) where the agent's answer
--- streams and each tool call is one line updated in place, and a prompt buffer
--- (`switchyard://chat-prompt`) below it. One session at a time: the chat continues it,
--- `:Switchyard sessions` switches, `:Switchyard model` changes its model, a rewind takes
--- it back to a message. See `:help switchyard-chat`.
local config = require('switchyard.config')
local lsp = require('switchyard.lsp')

local M = {}

local api = vim.api
local levels = vim.log.levels
local notify = lsp.notify

M.transcript_name = 'switchyard://chat'
M.prompt_name = 'switchyard://chat-prompt'

--- The chat's state: the session it continues, the model chosen for it, the request
--- running, the tool lines by call id, the user's messages (header row, prompt, turn),
--- the usage line of the running request and the last usage seen.
local S = {
  session = nil,
  model = nil,
  provider = nil,
  running = nil,
  tools = {},
  messages = {},
  streaming = false,
  usage_row = nil,
  usage = nil,
  origin = nil,
  thought = nil,
}

-- ---------------------------------------------------------------------------------------
-- Buffers and windows

local function named_buffer(name, filetype, modifiable)
  local bufnr = vim.fn.bufnr('^' .. name .. '$')
  if bufnr ~= -1 and api.nvim_buf_is_valid(bufnr) then
    return bufnr
  end
  bufnr = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(bufnr, name)
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].bufhidden = 'hide'
  vim.bo[bufnr].swapfile = false
  vim.bo[bufnr].filetype = filetype
  vim.bo[bufnr].modifiable = modifiable
  return bufnr
end

local function map_defaults(bufnr, prompt)
  if not config.get().chat.mappings then
    return
  end
  local function map(modes, lhs, plug, desc)
    vim.keymap.set(modes, lhs, '<Plug>(' .. plug .. ')', { buffer = bufnr, remap = true, desc = desc })
  end
  if prompt then
    map('n', '<CR>', 'SwitchyardChatSubmit', 'Switchyard: send the prompt')
    map({ 'n', 'i' }, '<C-s>', 'SwitchyardChatSubmit', 'Switchyard: send the prompt')
  else
    map('n', 'gr', 'SwitchyardChatRewind', 'Switchyard: rewind to the message under the cursor')
  end
  map('n', '<C-c>', 'SwitchyardChatStop', 'Switchyard: stop the running request')
end

--- The transcript buffer (created on first use).
function M.transcript()
  local existed = vim.fn.bufnr('^' .. M.transcript_name .. '$') ~= -1
  local bufnr = named_buffer(M.transcript_name, 'markdown', false)
  if not existed then
    map_defaults(bufnr, false)
  end
  return bufnr
end

--- The prompt buffer (created on first use).
function M.prompt()
  local existed = vim.fn.bufnr('^' .. M.prompt_name .. '$') ~= -1
  local bufnr = named_buffer(M.prompt_name, 'markdown', true)
  if not existed then
    map_defaults(bufnr, true)
  end
  return bufnr
end

local function set_lines(bufnr, first, last, lines)
  vim.bo[bufnr].modifiable = true
  api.nvim_buf_set_lines(bufnr, first, last, false, lines)
  vim.bo[bufnr].modifiable = false
end

local function is_empty(bufnr)
  return api.nvim_buf_line_count(bufnr) == 1 and (api.nvim_buf_get_lines(bufnr, 0, 1, false)[1] or '') == ''
end

local function window_options(win, wrap)
  vim.wo[win].wrap = wrap
  vim.wo[win].linebreak = wrap
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
  vim.wo[win].signcolumn = 'no'
  vim.wo[win].winfixheight = true
end

--- Keeps the transcript's last line in view in every window that shows it.
local function follow()
  local bufnr = M.transcript()
  local last = api.nvim_buf_line_count(bufnr)
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(win) == bufnr and win ~= api.nvim_get_current_win() then
      pcall(api.nvim_win_set_cursor, win, { last, 0 })
    end
  end
end

local function open_float(cfg, transcript, prompt)
  local columns, rows = vim.o.columns, vim.o.lines - vim.o.cmdheight - 1
  local share = cfg.size <= 1 and cfg.size or 0.8
  local width = math.max(math.floor(columns * math.max(share, 0.5)), 20)
  local height = math.max(math.floor(rows * math.max(share, 0.5)) - cfg.prompt_height - 4, 3)
  local row = math.max(math.floor((rows - height - cfg.prompt_height - 4) / 2), 0)
  local col = math.max(math.floor((columns - width) / 2), 0)
  local base = { relative = 'editor', width = width, style = 'minimal', border = 'rounded' }
  local titled = vim.fn.has('nvim-0.9') == 1
  if not titled then
    lsp.note_once('float-title', 'this Neovim (before 0.9) has no float titles: the chat float is untitled')
  end
  local t_opts = vim.tbl_extend('force', base, { row = row, col = col, height = height })
  local p_opts = vim.tbl_extend('force', base, { row = row + height + 2, col = col, height = cfg.prompt_height })
  if titled then
    t_opts.title, p_opts.title = ' Switchyard ', ' Prompt (<C-s> sends) '
  end
  local twin = api.nvim_open_win(transcript, false, t_opts)
  local pwin = api.nvim_open_win(prompt, true, p_opts)
  window_options(twin, true)
  window_options(pwin, true)
  return twin, pwin
end

--- Opens the chat (or focuses it when it is open) with the cursor in the prompt.
function M.open()
  local cfg = config.get().chat
  local current = api.nvim_get_current_buf()
  if lsp.is_file_buffer(current) then
    S.origin = current
  end
  local transcript, prompt = M.transcript(), M.prompt()
  local twin, pwin = vim.fn.bufwinid(transcript), vim.fn.bufwinid(prompt)
  if twin ~= -1 and pwin ~= -1 then
    api.nvim_set_current_win(pwin)
    return
  end
  if cfg.layout == 'float' then
    if twin ~= -1 then
      api.nvim_win_close(twin, true)
    end
    if pwin ~= -1 then
      api.nvim_win_close(pwin, true)
    end
    open_float(cfg, transcript, prompt)
  else
    if twin == -1 then
      local size = cfg.size
      if size <= 1 then
        size = math.floor((cfg.layout == 'vsplit' and vim.o.columns or vim.o.lines) * size)
      end
      vim.cmd(('botright %s%dsplit'):format(cfg.layout == 'vsplit' and 'vertical ' or '', math.max(size, 5)))
      twin = api.nvim_get_current_win()
      api.nvim_win_set_buf(twin, transcript)
      window_options(twin, true)
    else
      api.nvim_set_current_win(twin)
    end
    if pwin == -1 then
      vim.cmd(('belowright %dsplit'):format(cfg.prompt_height))
      pwin = api.nvim_get_current_win()
      api.nvim_win_set_buf(pwin, prompt)
      window_options(pwin, true)
    end
    api.nvim_set_current_win(pwin)
  end
  follow()
end

-- ---------------------------------------------------------------------------------------
-- The transcript

--- The row where new lines go: before the running request's usage line, else the end.
local function end_row(bufnr)
  return S.usage_row or api.nvim_buf_line_count(bufnr)
end

--- Appends whole lines (before the usage line). Returns the row of the first.
local function append_lines(lines)
  local bufnr = M.transcript()
  S.streaming = false
  local row = end_row(bufnr)
  if row == 1 and is_empty(bufnr) and not S.usage_row then
    set_lines(bufnr, 0, -1, lines)
    row = 0
  else
    set_lines(bufnr, row, row, lines)
  end
  if S.usage_row then
    S.usage_row = S.usage_row + #lines
  end
  follow()
  return row
end

--- Appends streamed text, continuing the last line of the answer.
local function append_text(text)
  local bufnr = M.transcript()
  if not S.streaming then
    local row = end_row(bufnr)
    local previous = row > 0 and api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ''
    append_lines(previous == '' and { '' } or { '', '' })
    S.streaming = true
  end
  local pieces = vim.split(text, '\n', { plain = true })
  local last = end_row(bufnr) - 1
  pieces[1] = (api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1] or '') .. pieces[1]
  set_lines(bufnr, last, last + 1, pieces)
  if S.usage_row then
    S.usage_row = S.usage_row + #pieces - 1
  end
  follow()
end

local function set_row(row, line)
  local bufnr = M.transcript()
  if row < api.nvim_buf_line_count(bufnr) then
    set_lines(bufnr, row, row + 1, { line })
  end
end

--- `1234567` → `1,234,567`.
local function thousands(n)
  local s = tostring(math.floor(tonumber(n) or 0))
  local out = s:reverse():gsub('(%d%d%d)', '%1,'):reverse()
  return (out:gsub('^,', ''))
end

local function usage_text(u)
  if type(u) ~= 'table' then
    return '-'
  end
  local text = ('%s in'):format(thousands(u.inputTokens))
  if (u.cachedTokens or 0) > 0 then
    text = text .. (' (%s cached)'):format(thousands(u.cachedTokens))
  end
  text = text .. (', %s out'):format(thousands(u.outputTokens))
  if type(u.costUsd) == 'number' then
    text = text .. (', $%.4f'):format(u.costUsd)
  end
  return text
end

local function show_usage(turn, session)
  S.usage = { turn = turn, session = session }
  local line = ('_usage: this turn %s · session %s_'):format(usage_text(turn), usage_text(session))
  local bufnr = M.transcript()
  -- The usage line stays last, after a blank line (`usage_row`), while the request runs.
  if S.usage_row then
    set_row(S.usage_row + 1, line)
  else
    local streaming = S.streaming
    append_lines({ '', line })
    S.usage_row = api.nvim_buf_line_count(bufnr) - 2
    S.streaming = streaming
  end
  lsp.fire('SwitchyardStatus')
end

local function content_text(content)
  if type(content) == 'string' then
    return content
  elseif type(content) == 'table' then
    if type(content.text) == 'string' then
      return content.text
    elseif type(content.content) == 'table' then
      return content_text(content.content)
    elseif content[1] ~= nil then
      return content_text(content[1])
    end
  end
  return ''
end

local marks = { in_progress = '⋯', pending = '⋯', completed = '✓', failed = '✗', cancelled = '⊘' }
local words = { in_progress = 'running', pending = 'waiting' }

--- One tool line: `- ✓ `read src/a.rs` · query · completed · 3 ms — 12 lines`.
local function tool_line(tool)
  local status = tool.status or 'in_progress'
  local line = ('- %s `%s` · %s · %s'):format(
    marks[status] or '·',
    tool.title,
    tool.lane or '-',
    words[status] or status
  )
  if tool.duration then
    line = line .. (' · %d ms'):format(tool.duration)
  end
  if tool.summary and tool.summary ~= '' then
    local summary = vim.split(tool.summary, '\n', { plain = true })[1]
    if vim.fn.strchars(summary) > 100 then
      summary = vim.fn.strcharpart(summary, 0, 99) .. '…'
    end
    line = line .. ' — ' .. summary
  end
  return line
end

--- Writes the reasoning streamed so far under its `Thinking…` line and folds the two
--- (closed) in every window that shows the transcript.
local function end_thought()
  local thought = S.thought
  if not thought then
    return
  end
  S.thought = nil
  local lines = {}
  for _, line in ipairs(vim.split(vim.trim(thought.text), '\n', { plain = true })) do
    table.insert(lines, '> ' .. line)
  end
  local last = append_lines(lines) + #lines
  local bufnr = M.transcript()
  for _, win in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(win) == bufnr then
      api.nvim_win_call(win, function()
        vim.wo[win].foldmethod = 'manual'
        vim.cmd(('%d,%dfold'):format(thought.row + 1, last))
      end)
    end
  end
end

local plan_marks = { completed = '[x]', in_progress = '[>]' }

--- Whether a `switchyard/sessionUpdate` belongs to the chat (its running request).
function M.accepts(params)
  return S.running ~= nil and (S.session == nil or params.sessionId == nil or params.sessionId == S.session)
end

--- Shows one `switchyard/sessionUpdate` of the chat's request.
function M.update(params)
  if S.session == nil and type(params.sessionId) == 'string' then
    S.session = params.sessionId
  end
  local update = type(params.update) == 'table' and params.update or params
  local kind = update.sessionUpdate
  if kind ~= 'agent_thought_chunk' then
    end_thought()
  end
  if kind == 'agent_thought_chunk' then
    -- Kept apart until it ends, then shown folded under its line.
    if not S.thought then
      S.thought = { row = append_lines({ '', '> _Thinking…_' }) + 1, text = '' }
    end
    S.thought.text = S.thought.text .. content_text(update.content)
  elseif kind == 'plan' then
    local lines = { '', '**Plan**' .. (type(update.explanation) == 'string' and (' — ' .. update.explanation) or '') }
    for _, entry in ipairs(type(update.entries) == 'table' and update.entries or {}) do
      table.insert(lines, ('- %s %s'):format(plan_marks[entry.status] or '[ ]', tostring(entry.content)))
    end
    append_lines(lines)
  elseif kind == 'agent_message_chunk' then
    local message = S.messages[#S.messages]
    if message then
      message.streamed = true
    end
    append_text(content_text(update.content))
  elseif kind == 'tool_call' then
    local tool = {
      title = tostring(update.title or update.toolCallId or 'tool'),
      lane = update.lane,
      status = update.status or 'in_progress',
    }
    -- A batch of tool lines is a list of its own, after a blank line.
    local bufnr = M.transcript()
    local row = end_row(bufnr)
    local previous = row > 0 and api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ''
    if previous ~= '' and not previous:find('^%- [^ ]+ `') then
      append_lines({ '' })
    end
    tool.row = append_lines({ tool_line(tool) })
    S.tools[update.toolCallId or tool.title] = tool
  elseif kind == 'tool_call_update' then
    local tool = S.tools[update.toolCallId]
    if tool and update.status then
      tool.status = update.status
      tool.lane = update.lane or tool.lane
      tool.duration = update.durationMs
      tool.summary = content_text(update.content)
      set_row(tool.row, tool_line(tool))
    end
  elseif kind == 'usage' then
    show_usage(update.turn, update.session)
  elseif kind == 'model_retry' then
    append_lines({ ('_the model call failed (%s); attempt %d of %d_'):format(
      tostring(update.error),
      (update.attempt or 0) + 1,
      update.maxAttempts or 0
    ) })
  elseif kind == 'compaction' then
    append_lines({ ('_older messages summarized: %d replaced, %d kept_'):format(
      update.replacedMessages or 0,
      update.keptMessages or 0
    ) })
  end
end

--- Notes something the user decided while the chat runs (an approval, a review).
function M._note(text)
  if S.running then
    append_lines({ '> ' .. text })
  end
end

--- Notes an approval the user answered.
function M._approval(message, choice)
  M._note(('%s → **%s**'):format(message, choice or 'dismissed'))
end

-- ---------------------------------------------------------------------------------------
-- Sending, stopping

local error_text = lsp.error_text

local function header(message)
  return message.turn and ('## You · turn %d'):format(message.turn) or '## You'
end

--- Ends `run` (once: a stopped run ends when the cancel is answered, because Neovim drops
--- the request's RequestCancelled answer).
local function finish(run, err, result)
  if S.running ~= run then
    return
  end
  local message = run.message
  end_thought()
  S.running = nil
  if err then
    local stopped = type(err) == 'table' and err.code == lsp.errors.request_cancelled
    append_lines({ '', stopped and '**stopped**' or ('**failed: %s**'):format(error_text(err)) })
  else
    result = type(result) == 'table' and result or {}
    if type(result.sessionId) == 'string' then
      S.session = result.sessionId
    end
    if type(result.turn) == 'number' then
      message.turn = result.turn
      set_row(message.row, header(message))
    end
    if not message.streamed and type(result.text) == 'string' and result.text ~= '' then
      append_text(result.text)
    end
    if result.stopReason and result.stopReason ~= 'end_turn' then
      append_lines({ '', ('_stopped: %s%s_'):format(result.stopReason, result.stopMessage and (' — ' .. result.stopMessage) or '') })
    end
    if result.usage then
      show_usage(result.usage, result.sessionUsage)
    end
  end
  -- One blank line before the usage line, however the answer ended.
  local bufnr = M.transcript()
  while S.usage_row and S.usage_row >= 1 do
    if api.nvim_buf_get_lines(bufnr, S.usage_row - 1, S.usage_row, false)[1] ~= '' then
      break
    end
    set_lines(bufnr, S.usage_row - 1, S.usage_row, {})
    S.usage_row = S.usage_row - 1
  end
  S.usage_row = nil
  S.streaming = false
  lsp.fire('SwitchyardStatus')
  lsp.fire('SwitchyardChatDone')
end

--- Sends `text` to the chat's session (a new one on the first prompt).
function M.send(text)
  if S.running then
    notify('a request is running in the chat; stop it first (:Switchyard stop)', levels.WARN)
    return false
  end
  local origin = S.origin and api.nvim_buf_is_valid(S.origin) and S.origin or 0
  return lsp.with_client(origin, function(client)
    local params = { prompt = text, sessionId = S.session }
    if origin ~= 0 then
      params.context = require('switchyard')._context(client, origin)
    end
    if S.model then
      params.model, params.provider = S.model, S.provider
    end
    local message = { prompt = text }
    local lines = { '## You' }
    vim.list_extend(lines, vim.split(text, '\n', { plain = true }))
    if not is_empty(M.transcript()) then
      table.insert(lines, 1, '')
    end
    local first = append_lines(lines)
    message.row = first + (lines[1] == '' and 1 or 0)
    table.insert(S.messages, message)
    S.tools = {}
    local run = { client_id = client.id, message = message }
    S.running = run
    local ok, id = lsp.request(client, lsp.methods.ask, params, function(err, result)
      finish(run, err, result)
    end)
    if not ok then
      finish(run, 'the request could not be sent (the server stopped?)')
      return
    end
    run.id = id
    lsp.fire('SwitchyardStatus')
  end)
end

--- Sends what the prompt buffer holds and empties it.
function M.submit()
  local prompt = M.prompt()
  local text = vim.trim(table.concat(api.nvim_buf_get_lines(prompt, 0, -1, false), '\n'))
  if text == '' then
    notify('the prompt is empty')
    return
  end
  if S.running then
    notify('a request is running in the chat; stop it first (:Switchyard stop)', levels.WARN)
    return
  end
  api.nvim_buf_set_lines(prompt, 0, -1, false, {})
  M.send(text)
end

--- Stops the chat's running request (`switchyard.cancel` with its session).
function M.stop()
  if not S.running then
    notify('nothing is running in the chat')
    return
  end
  local run = S.running
  local client = vim.lsp.get_client_by_id(run.client_id)
  if not client then
    finish(run, 'the language server is gone')
    return
  end
  local stopped = { code = lsp.errors.request_cancelled }
  if S.session then
    lsp.execute(client, lsp.commands.cancel, { id = S.session }, function(err)
      if err then
        notify('stop failed: ' .. error_text(err), levels.ERROR)
      else
        finish(run, stopped)
      end
    end)
  elseif run.id then
    lsp.call(client, 'cancel_request', run.id)
    finish(run, stopped)
  end
end

-- ---------------------------------------------------------------------------------------
-- Sessions, model, rewind

local function reset(lines)
  S.tools, S.messages, S.usage_row, S.streaming, S.usage = {}, {}, nil, false, nil
  S.thought = nil
  set_lines(M.transcript(), 0, -1, lines or {})
  lsp.fire('SwitchyardStatus')
end

--- Starts a new session in the chat.
function M.new()
  if S.running then
    notify('a request is running in the chat; stop it first (:Switchyard stop)', levels.WARN)
    return
  end
  S.session = nil
  reset()
  M.open()
end

local function when(ms)
  if type(ms) ~= 'number' then
    return '-'
  end
  return os.date('%Y-%m-%d %H:%M', math.floor(ms / 1000))
end

--- One picker line for a session.
function M.format_session(s)
  return ('%s · %d turn%s · %s · %s%s'):format(
    s.title ~= '' and s.title or '(untitled)',
    s.turns or 0,
    s.turns == 1 and '' or 's',
    usage_text(s.usage),
    when(s.updatedMs),
    s.sessionId == S.session and ' · current' or ''
  )
end

--- Continues session `s` (a `switchyard/listSessions` entry) in the chat.
function M.resume(s)
  if S.running then
    notify('a request is running in the chat; stop it first (:Switchyard stop)', levels.WARN)
    return
  end
  S.session = s.sessionId
  reset({
    ('# %s'):format(s.title ~= '' and s.title or '(untitled)'),
    ('_resumed session %s: %d turn%s, %s_'):format(
      s.sessionId,
      s.turns or 0,
      s.turns == 1 and '' or 's',
      usage_text(s.usage)
    ),
  })
  S.usage = { session = s.usage }
  M.open()
  lsp.fire('SwitchyardChatResumed')
end

--- Lists the workspace's sessions (`switchyard/listSessions`) in `vim.ui.select`; the one
--- picked is resumed or deleted (a second picker asks which).
function M.sessions()
  lsp.with_client(0, function(client)
    lsp.request(client, lsp.methods.list_sessions, vim.empty_dict(), function(err, result)
      if err then
        notify('listing the sessions failed: ' .. error_text(err), levels.ERROR)
        return
      end
      local sessions = type(result) == 'table' and result.sessions or {}
      if #sessions == 0 then
        notify('no sessions kept for this workspace')
        return
      end
      vim.ui.select(sessions, { prompt = 'Switchyard sessions', kind = 'switchyard_session', format_item = M.format_session }, function(s)
        if not s then
          return
        end
        vim.ui.select({ 'resume', 'delete' }, { prompt = ('Session "%s"'):format(s.title) }, function(action)
          if action == 'resume' then
            M.resume(s)
          elseif action == 'delete' then
            lsp.request(client, lsp.methods.delete_session, { sessionId = s.sessionId }, function(e)
              if e then
                notify('deleting the session failed: ' .. error_text(e), levels.ERROR)
                return
              end
              if S.session == s.sessionId then
                S.session = nil
                reset({ ('_session "%s" deleted; the next prompt starts a new one_'):format(s.title) })
              end
              notify(('deleted session "%s"'):format(s.title))
              lsp.fire('SwitchyardSessionDeleted')
            end)
          end
        end)
      end)
    end)
  end)
end

--- Parses "provider:name" or "name".
local function parse_model(item)
  local provider, name = item:match('^(%w+):(.+)$')
  if provider == 'openai' or provider == 'anthropic' then
    return name, provider
  end
  return item, nil
end

--- Uses `item` ("name" or "provider:name") for the chat's next prompts.
function M.set_model(item)
  local name, provider = parse_model(item)
  S.model, S.provider = name, provider
  append_lines({ '', ('_model: %s%s from the next prompt on_'):format(name, provider and (' (' .. provider .. ')') or '') })
  lsp.fire('SwitchyardStatus')
end

--- The model the chat asks for (nil: the server's).
function M.model()
  return S.model, S.provider
end

--- Picks the chat's model from the `models` option with `vim.ui.select` (or asks for a
--- name when the list is empty); `name` sets it directly.
function M.pick_model(name)
  if name and name ~= '' then
    M.set_model(name)
    return
  end
  local models = config.get().models
  if #models == 0 then
    vim.ui.input({ prompt = 'Model (name or provider:name): ' }, function(input)
      if input and vim.trim(input) ~= '' then
        M.set_model(vim.trim(input))
      end
    end)
    return
  end
  vim.ui.select(models, {
    prompt = 'Switchyard model',
    kind = 'switchyard_model',
    format_item = function(item)
      local n, p = parse_model(item)
      local current = (n == S.model and p == S.provider) and ' · current' or ''
      return n .. (p and (' (' .. p .. ')') or '') .. current
    end,
  }, function(item)
    if item then
      M.set_model(item)
    end
  end)
end

--- The user message at or above `row` (0-based) in the transcript.
local function message_at(row)
  local found, index
  for i, message in ipairs(S.messages) do
    if message.row <= row then
      found, index = message, i
    end
  end
  return found, index
end

--- Takes the session back to the start of the turn of the message under the cursor
--- (`switchyard/rewind`): files and conversation, or one of them (asked with
--- `vim.ui.select`). The transcript loses that message and what followed; its prompt
--- comes back into the prompt buffer.
function M.rewind(row)
  if S.running then
    notify('a request is running in the chat; stop it first (:Switchyard stop)', levels.WARN)
    return
  end
  if not row then
    local win = vim.fn.bufwinid(M.transcript())
    if win == -1 then
      notify('open the chat and put the cursor on a message to rewind to', levels.WARN)
      return
    end
    row = api.nvim_win_get_cursor(win)[1] - 1
  end
  local message, index = message_at(row)
  if not message or not message.turn or not S.session then
    notify('no message of this session is under the cursor', levels.WARN)
    return
  end
  local choices = {
    { label = 'files and conversation' },
    { label = 'conversation only', only = 'conversation' },
    { label = 'files only', only = 'code' },
  }
  vim.ui.select(choices, {
    prompt = ('Rewind to before turn %d'):format(message.turn),
    kind = 'switchyard_rewind',
    format_item = function(c)
      return c.label
    end,
  }, function(choice)
    if not choice then
      return
    end
    lsp.with_client(S.origin or 0, function(client)
      local params = { sessionId = S.session, turn = message.turn, only = choice.only }
      lsp.request(client, lsp.methods.rewind, params, function(err, result)
        if err then
          notify('rewind failed: ' .. error_text(err), levels.ERROR)
          return
        end
        result = type(result) == 'table' and result or {}
        local restored = result.restored or {}
        local note = ('_rewound to before turn %d (%s)'):format(message.turn, choice.label)
        if #restored > 0 then
          note = note .. ': restored ' .. table.concat(restored, ', ')
        end
        note = note .. '_'
        if choice.only ~= 'code' then
          local bufnr = M.transcript()
          local from = message.row
          if from > 0 and (api.nvim_buf_get_lines(bufnr, from - 1, from, false)[1] or '') == '' then
            from = from - 1
          end
          set_lines(bufnr, from, -1, {})
          for i = #S.messages, index, -1 do
            table.remove(S.messages, i)
          end
          S.tools = {}
          api.nvim_buf_set_lines(M.prompt(), 0, -1, false, vim.split(message.prompt, '\n', { plain = true }))
        end
        append_lines({ '', note })
        for _, line in ipairs(result.notRestorable or {}) do
          append_lines({ '_not restored: ' .. line .. '_' })
        end
        lsp.fire('SwitchyardRewound')
      end)
    end)
  end)
end

-- ---------------------------------------------------------------------------------------
-- Statusline

--- The chat's part of the statusline: the session's usage and cost, `⋯` while it runs.
function M.status()
  local parts = {}
  if S.running then
    table.insert(parts, '⋯')
  end
  if S.usage and S.usage.session then
    table.insert(parts, usage_text(S.usage.session))
  end
  if S.model then
    table.insert(parts, S.model)
  end
  return table.concat(parts, ' ')
end

--- The session the chat continues (nil before its first answer).
function M.session()
  return S.session
end

return M
