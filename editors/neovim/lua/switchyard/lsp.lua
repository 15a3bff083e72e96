--- The language client: starting `switchyard lsp` for a workspace root, attaching buffers,
--- sending requests in the style of the running Neovim, and the handlers for what the
--- server sends (progress, lane status, session updates).
---
--- The custom method and command names mirror `server/src/lsp/ext.rs` name for name (see
--- `docs/protocol.md`).
local config = require('switchyard.config')

local M = {}

local uv = vim.uv or vim.loop
local api = vim.api

--- Custom requests and notifications (`switchyard/...`), as in `ext.rs`.
M.methods = {
  ask = 'switchyard/ask',
  session_update = 'switchyard/sessionUpdate',
  lane_status = 'switchyard/laneStatus',
  pending_tasks = 'switchyard/pendingTasks',
  complete_task = 'switchyard/completeTask',
  list_sessions = 'switchyard/listSessions',
  delete_session = 'switchyard/deleteSession',
  rewind = 'switchyard/rewind',
  review_change = 'switchyard/reviewChange',
}

--- `workspace/executeCommand` commands (`switchyard.*`), as in `ext.rs`.
M.commands = {
  analyze_workspace = 'switchyard.analyzeWorkspace',
  ask = 'switchyard.ask',
  cancel = 'switchyard.cancel',
  queue_stats = 'switchyard.queueStats',
  mcp_status = 'switchyard.mcpStatus',
  compact = 'switchyard.compact',
  dead_letters = 'switchyard.deadLetters',
  retry_dead_letter = 'switchyard.retryDeadLetter',
  run_tool = 'switchyard.runTool',
}

--- JSON-RPC error codes the plugin tells apart.
M.errors = { request_cancelled = -32800, method_not_found = -32601 }

M.name = 'switchyard'

-- From 0.11 client methods are called with `:` (the `.` form is deprecated).
local colon_methods = vim.fn.has('nvim-0.11') == 1

--- Calls `client.<method>(...)` the way this Neovim wants it.
function M.call(client, method, ...)
  if colon_methods then
    return client[method](client, ...)
  end
  return client[method](...)
end

--- Sends a request; `handler(err, result, ctx)`. Returns whether it was sent, and its id.
function M.request(client, method, params, handler, bufnr)
  local ok, id = M.call(client, 'request', method, params, handler, bufnr)
  return ok, id
end

--- Sends `workspace/executeCommand` for `command` with its one argument object (or none).
function M.execute(client, command, argument, handler)
  return M.request(client, 'workspace/executeCommand', {
    command = command,
    arguments = argument and { argument } or {},
  }, handler)
end

--- The message of an LSP error (or of anything else given as one).
function M.error_text(err)
  if type(err) == 'table' then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end

local function notify(message, level)
  vim.notify('switchyard: ' .. message, level or vim.log.levels.INFO, { title = 'switchyard' })
end
M.notify = notify

--- Fires `User {pattern}` when someone listens for it.
function M.fire(pattern)
  if vim.fn.exists('#User#' .. pattern) == 1 then
    api.nvim_exec_autocmds('User', { pattern = pattern, modeline = false })
  end
end

-- ---------------------------------------------------------------------------------------
-- Clients and roots

--- Client ids this plugin started, with their root folders (initialized or not: 0.7 lists
--- only initialized clients).
local started = {}
--- Actions waiting for a client's `initialize` to finish, by client id.
local pending = {}

local function realpath(path)
  return uv.fs_realpath(path) or path
end

--- Whether `bufnr` shows a file (a normal, named buffer).
function M.is_file_buffer(bufnr)
  return api.nvim_buf_is_valid(bufnr)
    and vim.bo[bufnr].buftype == ''
    and api.nvim_buf_get_name(bufnr) ~= ''
end

local function is_under(root, path)
  if path == root then
    return true
  end
  local prefix = root:sub(-1) == '/' and root or root .. '/'
  return path:sub(1, #prefix) == prefix
end

local function buffer_path(bufnr)
  if not M.is_file_buffer(bufnr) then
    return nil
  end
  local name = vim.fn.fnamemodify(api.nvim_buf_get_name(bufnr), ':p')
  local dir = vim.fn.fnamemodify(name, ':h')
  return realpath(dir) .. '/' .. vim.fn.fnamemodify(name, ':t')
end

--- The workspace root for `bufnr`: the nearest folder upwards holding the first of
--- `markers` that exists anywhere upwards, else the current directory.
function M.root_for(bufnr, markers)
  local path = buffer_path(bufnr)
  local start = path and vim.fn.fnamemodify(path, ':h') or realpath(vim.fn.getcwd())
  for _, marker in ipairs(markers) do
    local dir = start
    while dir and dir ~= '' do
      if uv.fs_stat(dir .. '/' .. marker) then
        return dir
      end
      local parent = vim.fn.fnamemodify(dir, ':h')
      if parent == dir then
        break
      end
      dir = parent
    end
  end
  return realpath(vim.fn.getcwd())
end

--- The running switchyard clients this plugin started.
function M.clients()
  local out = {}
  for id in pairs(started) do
    local client = vim.lsp.get_client_by_id(id)
    if client then
      table.insert(out, client)
    end
  end
  table.sort(out, function(a, b)
    return a.id < b.id
  end)
  return out
end

--- The client whose root holds `bufnr`'s file (the innermost), or the one for the
--- current directory, or nil.
function M.client_for(bufnr)
  local path = buffer_path(bufnr)
  local best
  for _, client in ipairs(M.clients()) do
    local root = client.config.root_dir
    if path and is_under(root, path) then
      if not best or #root > #best.config.root_dir then
        best = client
      end
    end
  end
  if best then
    return best
  end
  local cwd = realpath(vim.fn.getcwd())
  for _, client in ipairs(M.clients()) do
    if client.config.root_dir == cwd then
      return client
    end
  end
  return nil
end

--- Attaches `bufnr` to the client whose root holds its file, if any.
function M.attach_buffer(bufnr)
  local path = buffer_path(bufnr)
  if not path or not api.nvim_buf_is_loaded(bufnr) then
    return
  end
  for _, client in ipairs(M.clients()) do
    if is_under(client.config.root_dir, path) then
      vim.lsp.buf_attach_client(bufnr, client.id)
      return
    end
  end
end

local function attach_loaded_buffers()
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    M.attach_buffer(bufnr)
  end
end

local attach_group
local function watch_buffers()
  if attach_group then
    return
  end
  attach_group = api.nvim_create_augroup('switchyard_attach', { clear = true })
  api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile', 'BufFilePost' }, {
    group = attach_group,
    desc = 'switchyard: attach files inside a workspace to its language server',
    callback = function(args)
      M.attach_buffer(args.buf)
    end,
  })
end

-- ---------------------------------------------------------------------------------------
-- What the server sends

--- Per client: the last `switchyard/laneStatus`, and per busy lane how many of its tasks
--- had finished when it became busy (so `Q 12/40` counts this burst of work only).
local lane_state = {}

--- Lane letters, in priority order.
local lanes = { { 'control', 'C' }, { 'query', 'Q' }, { 'execute', 'E' }, { 'generate', 'G' } }

local function finished(counts)
  return (counts.done or 0) + (counts.failed or 0) + (counts.cancelled or 0)
end

local function on_lane_status(_, params, ctx)
  if type(params) ~= 'table' or not ctx then
    return
  end
  local state = lane_state[ctx.client_id] or { base = {} }
  state.lanes = {}
  state.dead_letters = params.deadLetters or 0
  for _, counts in ipairs(params.lanes or {}) do
    if type(counts) == 'table' and type(counts.lane) == 'string' then
      state.lanes[counts.lane] = counts
      local busy = (counts.queued or 0) + (counts.running or 0) > 0
      if busy then
        state.base[counts.lane] = state.base[counts.lane] or finished(counts)
      else
        state.base[counts.lane] = nil
      end
    end
  end
  lane_state[ctx.client_id] = state
  M.fire('SwitchyardStatus')
end

--- A short summary of the busy lanes for a statusline, such as `Q 12/40 · G 1`: per busy
--- lane its letter and, of the tasks it saw since it became busy, how many finished out
--- of how many (just the running count while none has finished and none waits). Empty
--- when every lane is idle.
function M.status()
  local parts = {}
  local ids = vim.tbl_keys(lane_state)
  table.sort(ids)
  for _, id in ipairs(ids) do
    local state = lane_state[id]
    for _, lane in ipairs(lanes) do
      local counts = state.lanes[lane[1]]
      if counts then
        local active = (counts.queued or 0) + (counts.running or 0)
        if active > 0 then
          local done = finished(counts) - (state.base[lane[1]] or 0)
          if done <= 0 and (counts.queued or 0) == 0 then
            table.insert(parts, ('%s %d'):format(lane[2], counts.running or 0))
          else
            table.insert(parts, ('%s %d/%d'):format(lane[2], math.max(done, 0), done + active))
          end
        end
      end
    end
  end
  return table.concat(parts, ' · ')
end

--- The last lane counts per client id (for health and tests).
function M.lane_state()
  return lane_state
end

--- Progress titles by client and token, to name the `end` notification.
local progress_titles = {}

--- `$/progress`: Neovim's own handler runs first (on 0.10+ it feeds `vim.lsp.status()`
--- and the `LspProgress` autocmd; on 0.7 `get_progress_messages()` and
--- `User LspProgressUpdate`), then begin and end go to vim.notify.
local function on_progress(err, result, ctx, handler_config)
  local default = vim.lsp.handlers['$/progress']
  local ret
  if default then
    ret = default(err, result, ctx, handler_config)
  end
  local value = type(result) == 'table' and result.value or nil
  if type(value) ~= 'table' or not ctx then
    return ret
  end
  local key = ctx.client_id .. ':' .. tostring(result.token)
  local cfg = config.get()
  if value.kind == 'begin' then
    progress_titles[key] = value.title or 'working'
    if cfg.notify_progress then
      notify(progress_titles[key] .. (value.message and (': ' .. value.message) or '') .. '…')
    end
  elseif value.kind == 'end' then
    local title = progress_titles[key] or 'work'
    progress_titles[key] = nil
    if cfg.notify_progress then
      notify(title .. ': ' .. (value.message or 'done'))
    end
  end
  return ret
end

local function on_session_update(_, params)
  if type(params) == 'table' then
    require('switchyard')._session_update(params)
  end
end

--- Whether a server request may be answered later: from 0.10 Neovim runs each one in a
--- coroutine, so the handler can yield until the user has answered; 0.7 needs the answer
--- before the handler returns.
function M.can_wait()
  local co, is_main = coroutine.running()
  return co ~= nil and not is_main
end

--- Said once per session of Neovim when 0.7 has to fall back.
local said = {}
function M.note_once(key, message)
  if not said[key] then
    said[key] = true
    notify(message, vim.log.levels.WARN)
  end
end

--- `window/showMessageRequest` (the approval prompt: Allow / Allow for this session /
--- Reject) through `vim.ui.select`, so a picker plugin shows it. A dismissed prompt is
--- `null`, which the server takes as a refusal.
local function on_show_message_request(_, result, _ctx)
  result = type(result) == 'table' and result or {}
  local actions = type(result.actions) == 'table' and result.actions or {}
  local message = tostring(result.message or '')
  if #actions == 0 then
    notify(message)
    return vim.NIL
  end
  local opts = {
    prompt = message,
    kind = 'switchyard_approval',
    format_item = function(action)
      return action.title
    end,
  }
  local function record(choice)
    require('switchyard.chat')._approval(message, choice and choice.title or nil)
  end
  if M.can_wait() then
    local co = coroutine.running()
    vim.ui.select(actions, opts, function(choice)
      record(choice)
      vim.schedule(function()
        coroutine.resume(co, choice or vim.NIL)
      end)
    end)
    return coroutine.yield()
  end
  -- 0.7: the answer must be there when this returns. The built-in vim.ui.select answers
  -- at once; a picker that answers later cannot be waited for, so inputlist asks instead.
  local answered, answer = false, nil
  vim.ui.select(actions, opts, function(choice)
    answered, answer = true, choice
  end)
  if not answered then
    M.note_once(
      'select',
      'this Neovim (before 0.10) cannot wait for an asynchronous vim.ui.select; the approval is asked with inputlist'
    )
    local items = { message }
    for i, action in ipairs(actions) do
      table.insert(items, ('%d. %s'):format(i, action.title))
    end
    local n = vim.fn.inputlist(items)
    answer = actions[n]
  end
  record(answer)
  return answer or vim.NIL
end

local function on_review_change(_, params)
  if type(params) ~= 'table' then
    return nil, vim.lsp.rpc.rpc_response_error(-32602, 'switchyard/reviewChange: params must be an object')
  end
  return require('switchyard.review').handle(params)
end

--- Client-specific handlers; every other method keeps Neovim's default (notably
--- `workspace/applyEdit`).
local handlers = {
  ['$/progress'] = on_progress,
  ['window/showMessageRequest'] = on_show_message_request,
  [M.methods.lane_status] = on_lane_status,
  [M.methods.session_update] = on_session_update,
  [M.methods.review_change] = on_review_change,
}
M.handlers = handlers

-- ---------------------------------------------------------------------------------------
-- Starting and stopping

--- `review` as set with `:Switchyard review`, over the option, until Neovim exits.
local review_override = nil

--- The review setting in force.
function M.review()
  return review_override or config.get().review
end

--- Puts `review` ("changes" or "off") in force now: every running server is told
--- (`workspace/didChangeConfiguration`, then it pulls the `switchyard` section).
function M.set_review(value)
  review_override = value
  for _, client in ipairs(M.clients()) do
    local settings = client.config.settings or {}
    settings.switchyard = settings.switchyard or {}
    settings.switchyard.review = value
    client.config.settings = settings
    M.call(client, 'notify', 'workspace/didChangeConfiguration', { settings = settings })
  end
end

local function client_config(cfg, root)
  local settings = cfg.settings or {}
  local review = review_override or cfg.review
  if review ~= 'off' or review_override then
    settings = vim.tbl_extend('force', {}, settings, { review = review })
  end
  local has_settings = next(settings) ~= nil
  return {
    name = M.name,
    cmd = cfg.cmd,
    cmd_env = next(cfg.cmd_env or {}) and cfg.cmd_env or nil,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = has_settings and settings or nil,
    settings = has_settings and { switchyard = settings } or {},
    handlers = handlers,
    -- The server reads open buffers before the disk (the agent's tools, a rewind's check
    -- that a file is still what the agent left): every change goes at once, so an edit
    -- applied through workspace/applyEdit is known to the server when it asks next.
    flags = { debounce_text_changes = 0 },
    on_init = function(client)
      local queue = pending[client.id] or {}
      pending[client.id] = nil
      -- Scheduled: attached buffers get their didOpen after on_init returns.
      vim.schedule(function()
        for _, entry in ipairs(queue) do
          entry.action(client)
        end
      end)
    end,
    on_attach = function(client, bufnr)
      if cfg.on_attach then
        cfg.on_attach(client, bufnr)
      end
    end,
    on_exit = function(code, signal, client_id)
      started[client_id] = nil
      lane_state[client_id] = nil
      local waiting = pending[client_id] or {}
      pending[client_id] = nil
      vim.schedule(function()
        M.fire('SwitchyardStatus')
        -- (Neovim itself reports an unexpected exit; what waited for the server fails.)
        for _, entry in ipairs(waiting) do
          entry.fail(
            ('the language server exited before it was ready (code %d, signal %d); see :LspLog'):format(
              code or -1,
              signal or 0
            )
          )
        end
      end)
    end,
  }
end

--- Starts the client for `root` with `bufnr` attached when it is a file.
local function start(cfg, root, bufnr)
  local lsp_config = client_config(cfg, root)
  local id
  if M.is_file_buffer(bufnr) and vim.lsp.start then
    -- 0.8+: start (or reuse) and attach in one go.
    id = vim.lsp.start(lsp_config, { bufnr = bufnr })
  elseif vim.fn.has('nvim-0.11') == 1 then
    id = vim.lsp.start(lsp_config, { bufnr = bufnr, attach = false })
  else
    -- 0.7 (and a start without a file to attach before 0.11).
    id = vim.lsp.start_client(lsp_config)
    if id and M.is_file_buffer(bufnr) then
      vim.lsp.buf_attach_client(bufnr, id)
    end
  end
  return id
end

--- Returns the client for `bufnr`, starting it when there is none; or nil and a message.
function M.ensure(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client_for(bufnr)
  if client then
    if M.is_file_buffer(bufnr) then
      vim.lsp.buf_attach_client(bufnr, client.id)
    end
    return client
  end
  local cfg = config.get()
  local root = M.root_for(bufnr, cfg.root_markers)
  for _, existing in ipairs(M.clients()) do
    if existing.config.root_dir == root then
      return existing
    end
  end
  if vim.fn.executable(cfg.cmd[1]) ~= 1 then
    return nil,
      ('`%s` is not executable: install switchyard or set `cmd` (see :checkhealth switchyard)'):format(
        cfg.cmd[1]
      )
  end
  local ok, id = pcall(start, cfg, root, bufnr)
  if not ok or not id then
    return nil, ('cannot start %s: %s'):format(table.concat(cfg.cmd, ' '), tostring(id))
  end
  started[id] = root
  watch_buffers()
  attach_loaded_buffers()
  return vim.lsp.get_client_by_id(id)
end

--- Runs `action(client)` once the client for `bufnr` is initialized, starting it if
--- needed. When the client cannot start, or exits before it is ready, the problem is
--- reported and `on_fail(message)` runs instead. Returns whether the client is there.
function M.with_client(bufnr, action, on_fail)
  local function fail(message)
    notify(message, vim.log.levels.ERROR)
    if on_fail then
      on_fail(message)
    end
  end
  local client, err = M.ensure(bufnr)
  if not client then
    fail(err)
    return false
  end
  if client.initialized then
    action(client)
  else
    pending[client.id] = pending[client.id] or {}
    table.insert(pending[client.id], { action = action, fail = fail })
  end
  return true
end

--- Stops every client this plugin started and waits (up to `timeout_ms`) until they
--- exited; returns the buffers they had attached.
function M.stop_all(timeout_ms)
  local buffers = {}
  local clients = M.clients()
  for _, client in ipairs(clients) do
    if type(client.attached_buffers) == 'table' then
      vim.list_extend(buffers, vim.tbl_keys(client.attached_buffers))
    elseif vim.lsp.get_buffers_by_client_id then -- 0.7
      vim.list_extend(buffers, vim.lsp.get_buffers_by_client_id(client.id))
    end
    M.call(client, 'stop')
  end
  local function all_gone()
    for _, client in ipairs(clients) do
      if vim.lsp.get_client_by_id(client.id) then
        return false
      end
    end
    return true
  end
  if not vim.wait(timeout_ms or 3000, all_gone, 20) then
    for _, client in ipairs(clients) do
      if vim.lsp.get_client_by_id(client.id) then
        M.call(client, 'stop', true)
      end
    end
    vim.wait(1000, all_gone, 20)
  end
  for _, client in ipairs(clients) do
    started[client.id] = nil
    lane_state[client.id] = nil
  end
  return buffers
end

return M
