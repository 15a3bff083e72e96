-- The Neovim suite's harness, loaded by each test_*.lua (`dofile`). A test is one headless
-- Neovim: `T.run(name, fn)` runs fn, then quits with `qa!` when it returned and `cq!`
-- when it raised, printing everything it recorded (`T.log`), the notifications and the
-- dumps registered with `T.on_failure`. A timer past SWITCHYARD_TEST_DEADLINE_MS prints
-- the same, kills the processes the test started and exits, so a hang fails.
local T = {}

local uv = vim.uv or vim.loop

T.dir = assert(os.getenv('SWITCHYARD_TEST_DIR'), 'SWITCHYARD_TEST_DIR is not set')
T.tmp = assert(os.getenv('SWITCHYARD_TEST_TMP'), 'SWITCHYARD_TEST_TMP is not set')
T.workspace = assert(os.getenv('SWITCHYARD_TEST_WORKSPACE'), 'SWITCHYARD_TEST_WORKSPACE is not set')
T.deadline_ms = tonumber(os.getenv('SWITCHYARD_TEST_DEADLINE_MS') or '') or 55000
T.version = vim.fn.execute('version'):match('NVIM v(%S+)') or '?'

local seen = {}
local failure_dumps = {}
local pids = {}

local function write(text)
  io.stderr:write(text .. '\n')
  io.stderr:flush()
end
T.say = write

--- Records a line of what the test saw, printed when it fails.
function T.log(fmt, ...)
  local ok, line = pcall(string.format, fmt, ...)
  table.insert(seen, ('%7.3f %s'):format(uv.hrtime() / 1e9 % 1000, ok and line or fmt))
end

--- Registers `fn() -> string` to print on failure (buffer contents, recorded requests).
function T.on_failure(label, fn)
  table.insert(failure_dumps, { label, fn })
end

-- Every notification, in order.
T.notifications = {}
vim.notify = function(message, level)
  table.insert(T.notifications, { message = message, level = level })
  T.log('notify[%s] %s', tostring(level), tostring(message))
end

local Failure = {}

--- Fails the test with `message`.
function T.fail(message)
  error(setmetatable({ message = message }, Failure), 2)
end

function T.check(condition, message)
  if not condition then
    T.fail(message)
  end
  return condition
end

function T.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    T.fail(('%s\n  expected: %s\n  actual:   %s'):format(what, vim.inspect(expected), vim.inspect(actual)))
  end
end

--- Waits up to `ms` for `condition()`, processing events; fails naming `what`.
function T.wait(ms, condition, what)
  if not vim.wait(ms, condition, 20) then
    T.fail(('timed out after %d ms waiting for %s'):format(ms, what))
  end
end

--- Reads a whole file, or nil.
function T.read(path)
  local f = io.open(path, 'rb')
  if not f then
    return nil
  end
  local text = f:read('*a')
  f:close()
  return text
end

function T.lines(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- Remembers a process the test started (killed at the end, and by the driver if Neovim
--- dies first: it reads `pids` in the test's folder).
function T.add_pid(pid, name)
  if not pid or pid <= 0 or pids[pid] then
    return
  end
  pids[pid] = name
  local f = io.open(T.tmp .. '/pids', 'a')
  if f then
    f:write(('%d %s\n'):format(pid, name))
    f:close()
  end
  T.log('started %s (pid %d)', name, pid)
end

--- The children of this Neovim whose command line mentions `name` (found by parent
--- PID, through /proc).
function T.children(name)
  local out = {}
  local me = vim.fn.getpid()
  local tasks = vim.fn.glob(('/proc/%d/task/*/children'):format(me), true, true)
  for _, file in ipairs(tasks) do
    for pid in (T.read(file) or ''):gmatch('%d+') do
      local cmdline = (T.read(('/proc/%s/cmdline'):format(pid)) or ''):gsub('%z', ' ')
      if cmdline:find(name, 1, true) then
        table.insert(out, tonumber(pid))
      end
    end
  end
  return out
end

--- Records the language servers this Neovim started.
function T.record_servers()
  for _, pid in ipairs(T.children('switchyard')) do
    T.add_pid(pid, 'switchyard')
  end
end

local function alive(pid)
  return uv.kill(pid, 0) == 0
end

local function kill_all()
  for pid, name in pairs(pids) do
    if alive(pid) then
      uv.kill(pid, 'sigterm')
      write(('  killed %s (pid %d)'):format(name, pid))
    end
  end
end

local function dump(reason)
  write(('\nFAIL %s [nvim %s]: %s'):format(T.name or '?', T.version, reason))
  write('--- what the test saw:')
  for _, line in ipairs(seen) do
    write('  ' .. line)
  end
  for _, item in ipairs(failure_dumps) do
    local ok, text = pcall(item[2])
    write('--- ' .. item[1] .. ':')
    write(ok and tostring(text) or ('(dump failed: ' .. tostring(text) .. ')'))
  end
end

--- Stops the clients and the processes the test started.
local function cleanup()
  pcall(function()
    require('switchyard.lsp').stop_all(3000)
  end)
  vim.wait(2000, function()
    for pid in pairs(pids) do
      if alive(pid) then
        return false
      end
    end
    return true
  end, 20)
  kill_all()
end

--- Runs the test `fn` and quits Neovim with its outcome.
function T.run(name, fn)
  T.name = name
  local timer = uv.new_timer()
  timer:start(T.deadline_ms, 0, function()
    local reason = ('deadline of %d ms passed (a hang?)'):format(T.deadline_ms)
    -- Dump with the full API if the loop still runs scheduled work (it does inside
    -- vim.wait); if it does not within 3 s (a blocking prompt), print from here, kill and
    -- exit: a fast callback may not touch the Vim API.
    vim.schedule(function()
      dump(reason)
      cleanup()
      vim.cmd('cq!')
    end)
    timer:start(3000, 0, function()
      write('FAIL ' .. tostring(T.name) .. ': ' .. reason .. ' and Neovim is blocked')
      for _, line in ipairs(seen) do
        write('  ' .. line)
      end
      kill_all()
      os.exit(3)
    end)
  end)
  local ok, err = xpcall(fn, function(e)
    if getmetatable(e) == Failure then
      return e.message .. '\n' .. debug.traceback('', 2):gsub('^\n', '')
    end
    return debug.traceback(tostring(e), 2)
  end)
  timer:stop()
  timer:close()
  if ok then
    cleanup()
    write(('\nok   %s [nvim %s]'):format(name, T.version))
    if os.getenv('SWITCHYARD_TEST_VERBOSE') then
      for _, line in ipairs(seen) do
        write('  ' .. line)
      end
    end
    local f = io.open(T.tmp .. '/passed', 'w')
    if f then
      f:write(name .. '\n')
      f:close()
    end
    vim.cmd('qa!')
  else
    dump(err)
    cleanup()
    vim.cmd('cq!')
  end
end

--- Starts the mock model with the script `script` (a file in the suite's folder), its
--- requests recorded; returns its port and the record file's path.
function T.mock_model(script)
  local port_file, record = T.tmp .. '/mock.port', T.tmp .. '/mock.requests.jsonl'
  local mock = assert(os.getenv('SWITCHYARD_TEST_MOCK_MODEL'), 'SWITCHYARD_TEST_MOCK_MODEL is not set')
  local job = vim.fn.jobstart({
    mock,
    '--script',
    T.dir .. '/' .. script,
    '--port-file',
    port_file,
    '--record',
    record,
    '--max-lifetime-secs',
    '120',
  }, {
    on_stdout = function(_, data)
      T.log('mock-model: %s', table.concat(data, ' '))
    end,
    on_stderr = function(_, data)
      T.log('mock-model stderr: %s', table.concat(data, ' '))
    end,
  })
  T.check(job > 0, 'mock-model started')
  T.add_pid(vim.fn.jobpid(job), 'mock-model')
  T.on_failure('requests the mock model received', function()
    local text = T.read(record) or '(none)'
    return #text > 6000 and (text:sub(1, 3000) .. '\n...\n' .. text:sub(-3000)) or text
  end)
  T.wait(10000, function()
    return (T.read(port_file) or ''):match('%d+') ~= nil
  end, 'the mock model port file')
  return T.read(port_file):match('%d+'), record
end

--- The requests the mock model recorded, decoded, in order.
function T.requests(record)
  local out = {}
  for _, line in ipairs(vim.split(T.read(record) or '', '\n')) do
    if line ~= '' then
      table.insert(out, vim.json.decode(line))
    end
  end
  return out
end

--- The environment that points the server at the mock model on `port`.
function T.model_env(port)
  return {
    OPENAI_BASE_URL = ('http://127.0.0.1:%s/v1'):format(port),
    OPENAI_API_KEY = 'sk-mock',
    SWITCHYARD_PROVIDER = 'openai',
    SWITCHYARD_MODEL = 'mock',
  }
end

--- Draws the floating windows over `grid` (rows of cells): a headless Neovim without a
--- UI leaves them out of the screen that screenstring() reads. Their text, from the top
--- line shown, inside a box when they have a border.
local function overlay_floats(grid)
  local api = vim.api
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    local cfg = api.nvim_win_get_config(win)
    if cfg.relative and cfg.relative ~= '' then
      local pos = vim.fn.win_screenpos(win)
      local top, left = pos[1], pos[2]
      local width, height = api.nvim_win_get_width(win), api.nvim_win_get_height(win)
      local first = vim.fn.line('w0', win)
      local lines = api.nvim_buf_get_lines(api.nvim_win_get_buf(win), first - 1, first - 1 + height, false)
      local function put(r, c, text)
        if grid[r] then
          local chars = vim.fn.split(text, '\\zs')
          for i, ch in ipairs(chars) do
            if grid[r][c + i - 1] ~= nil then
              grid[r][c + i - 1] = ch
            end
          end
        end
      end
      for i = 1, height do
        local text = vim.fn.strcharpart(lines[i] or '', 0, width)
        put(top + i - 1, left, text .. (' '):rep(width - vim.fn.strchars(text)))
      end
      local border = cfg.border
      if border and border ~= 'none' and (type(border) ~= 'table' or #border > 0) then
        put(top - 1, left - 1, '╭' .. ('─'):rep(width) .. '╮')
        put(top + height, left - 1, '╰' .. ('─'):rep(width) .. '╯')
        for i = 0, height - 1 do
          put(top + i, left - 1, '│')
          put(top + i, left + width, '│')
        end
      end
    end
  end
end

--- The visible screen as text, one string per row (what the user sees, after a redraw).
function T.screen()
  vim.cmd('redraw!')
  local grid = {}
  for r = 1, vim.o.lines do
    grid[r] = {}
    for c = 1, vim.o.columns do
      grid[r][c] = vim.fn.screenstring(r, c)
    end
  end
  overlay_floats(grid)
  local rows = {}
  for r = 1, vim.o.lines do
    rows[r] = (table.concat(grid[r]):gsub('%s+$', ''))
  end
  return rows
end

local captures = 0
--- Saves the visible screen as `NN-label.txt` in the suite's screens folder (printed
--- with the failure dumps too) and returns its rows.
function T.capture(label)
  local rows = T.screen()
  captures = captures + 1
  local dir = os.getenv('SWITCHYARD_TEST_SCREENS')
  if dir and dir ~= '' then
    vim.fn.mkdir(dir, 'p')
    local f = io.open(('%s/%02d-%s.txt'):format(dir, captures, label), 'w')
    if f then
      f:write(table.concat(rows, '\n') .. '\n')
      f:close()
    end
  end
  T.log('screen %s:\n%s', label, table.concat(rows, '\n'))
  return rows
end

--- Presses `keys` (with mappings) in the current window, as typed.
function T.press(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'mx', false)
end

--- Replaces vim.ui.select as a picker plugin would: it records each call (prompt and the
--- items as shown) and answers with `choose(shown_items, prompt)` (an index, or nil to
--- dismiss) — later, from the event loop, on a Neovim that can wait for it (0.10+), at
--- once on 0.7. Returns the list of calls.
function T.picker(choose)
  local calls = {}
  vim.ui.select = function(items, opts, on_choice)
    opts = opts or {}
    local shown = {}
    for i, item in ipairs(items) do
      shown[i] = opts.format_item and opts.format_item(item) or tostring(item)
    end
    local call = { prompt = opts.prompt, items = shown }
    table.insert(calls, call)
    local index = choose(shown, opts.prompt)
    call.choice = index and shown[index] or nil
    T.log('picker %q: %s -> %s', tostring(opts.prompt), vim.inspect(shown), tostring(call.choice))
    local answer = function()
      on_choice(index and items[index] or nil, index)
    end
    if vim.fn.has('nvim-0.10') == 1 then
      vim.schedule(answer)
    else
      answer()
    end
  end
  return calls
end

--- The index of the first of `items` containing `text`.
function T.find(items, text)
  for i, item in ipairs(items) do
    if item:find(text, 1, true) then
      return i
    end
  end
  return nil
end

--- Records `$/progress` through this Neovim's own mechanism: on 0.10+ the `LspProgress`
--- autocmd (and `vim.lsp.status()`), on 0.7 `User LspProgressUpdate` with
--- `vim.lsp.util.get_progress_messages()`. Returns the list it fills with
--- `{ kind = 'begin'|'report'|'end', title, message, percentage }`.
function T.record_progress()
  local events = {}
  if vim.fn.exists('##LspProgress') == 1 then
    T.progress_mechanism = 'LspProgress autocmd'
    vim.api.nvim_create_autocmd('LspProgress', {
      callback = function(ev)
        local params = ev.data and ev.data.params or {}
        local value = params.value or {}
        local event = {
          kind = value.kind,
          title = value.title,
          message = value.message,
          percentage = value.percentage,
          status = vim.lsp.status(),
        }
        table.insert(events, event)
        T.log('LspProgress %s', vim.inspect(event, { newline = ' ', indent = '' }))
      end,
    })
  else
    T.progress_mechanism = 'User LspProgressUpdate + get_progress_messages()'
    local open = {}
    vim.api.nvim_create_autocmd('User', {
      pattern = 'LspProgressUpdate',
      callback = function()
        for _, m in ipairs(vim.lsp.util.get_progress_messages()) do
          if m.progress then
            local key = tostring(m.title)
            local kind = m.done and 'end' or (open[key] and 'report' or 'begin')
            open[key] = not m.done or nil
            local event = { kind = kind, title = m.title, message = m.message, percentage = m.percentage }
            table.insert(events, event)
            T.log('LspProgressUpdate %s', vim.inspect(event, { newline = ' ', indent = '' }))
          end
        end
      end,
    })
  end
  return events
end

--- Waits for `User {pattern}` (registered before `trigger()` runs it).
function T.wait_event(pattern, ms, trigger)
  local fired = false
  vim.api.nvim_create_autocmd('User', {
    pattern = pattern,
    once = true,
    callback = function()
      fired = true
    end,
  })
  trigger()
  T.wait(ms, function()
    return fired
  end, 'User ' .. pattern)
end

return T
