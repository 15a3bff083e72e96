-- :Switchyard ask against the mock model: the file is modified but not saved, the model
-- answers with an `edit` tool call whose old_string exists only in the unsaved text, then
-- with a final text. Afterwards the buffer holds the unsaved change with the agent's edit
-- applied (by Neovim, through workspace/applyEdit), it is still unsaved, the file on disk
-- is unchanged, and the transcript shows the answer.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

T.run('ask', function()
  local tmp = T.tmp
  local port_file, record = tmp .. '/mock.port', tmp .. '/mock.requests.jsonl'
  local mock = assert(os.getenv('SWITCHYARD_TEST_MOCK_MODEL'), 'SWITCHYARD_TEST_MOCK_MODEL is not set')
  local job = vim.fn.jobstart({
    mock,
    '--script',
    T.dir .. '/ask.mock.json',
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
  local port = T.read(port_file):match('%d+')

  vim.g.switchyard = {
    cmd_env = {
      OPENAI_BASE_URL = ('http://127.0.0.1:%s/v1'):format(port),
      OPENAI_API_KEY = 'sk-mock',
      SWITCHYARD_PROVIDER = 'openai',
      SWITCHYARD_MODEL = 'mock',
    },
  }

  -- Approvals: Neovim's own prompt stays; the test answers it as a user would, by typing
  -- the number of the approving action.
  local approvals = {}
  local show_message_request = vim.lsp.handlers['window/showMessageRequest']
  vim.lsp.handlers['window/showMessageRequest'] = function(err, result, ctx, c)
    local titles = vim.tbl_map(function(a)
      return a.title
    end, (result or {}).actions or {})
    local choice = 1
    for i, title in ipairs(titles) do
      if title:lower():find('allow') or title:lower():find('approve') or title:lower():find('yes') then
        choice = i
        break
      end
    end
    table.insert(approvals, { message = result and result.message, actions = titles, choice = choice })
    T.log('approval asked: %s %s -> %d', tostring(result and result.message), vim.inspect(titles), choice)
    vim.api.nvim_input(choice .. '<CR>')
    return show_message_request(err, result, ctx, c)
  end

  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  local path = T.workspace .. '/src/greeting.rs'
  local on_disk = T.read(path)
  vim.cmd('edit src/greeting.rs')
  local bufnr = vim.api.nvim_get_current_buf()
  -- The unsaved modification, in two steps so the server sees both didOpen and didChange:
  -- a new first line before the server starts, then "hello" becomes "hi".
  vim.api.nvim_buf_set_lines(bufnr, 0, 0, false, { '// draft: say hi' })
  local ready = false
  require('switchyard.lsp').with_client(bufnr, function()
    ready = true
  end)
  T.wait(10000, function()
    return ready
  end, 'the language server to start')
  T.record_servers()
  vim.api.nvim_buf_set_lines(bufnr, 3, 4, false, { '    "hi"' })
  T.check(vim.bo[bufnr].modified, 'the buffer is modified')
  local before = T.lines(bufnr)
  T.log('buffer before ask: %s', vim.inspect(before))
  T.on_failure('buffer src/greeting.rs', function()
    return table.concat(T.lines(bufnr), '\n')
  end)
  T.on_failure('transcript switchyard://ask', function()
    local t = require('switchyard').buffer('switchyard://ask')
    return t and table.concat(T.lines(t), '\n') or '(no transcript buffer)'
  end)

  T.wait_event('SwitchyardAskDone', 40000, function()
    vim.cmd('Switchyard ask Make the greeting say hi to the world')
    T.record_servers()
  end)

  local expected = {
    '// draft: say hi',
    '/// What the greeter says.',
    "pub fn greeting() -> &'static str {",
    '    "hi, world"',
    '}',
  }
  T.eq(T.lines(bufnr), expected, 'the buffer: the unsaved change kept, the edit applied')
  T.check(vim.bo[bufnr].modified, 'the buffer is left unsaved')
  T.eq(T.read(path), on_disk, 'the file on disk is unchanged')

  local transcript = require('switchyard').buffer('switchyard://ask')
  T.check(transcript, 'a transcript buffer')
  local text = table.concat(T.lines(transcript), '\n')
  T.check(text:find('Make the greeting say hi to the world', 1, true), 'the transcript shows the prompt')
  T.check(text:find('the greeting now says "hi, world"', 1, true), 'the transcript shows the final answer')
  T.check(text:find('edit', 1, true), 'the transcript shows the edit tool call')
  local requests = vim.tbl_filter(function(line)
    return line ~= ''
  end, vim.split(T.read(record) or '', '\n'))
  T.eq(#requests, 2, 'model requests (a tool call turn, then the answer)')
  T.log('approvals: %s', vim.inspect(approvals))
end)
