-- :Switchyard ask against the mock model: the file is modified but not saved, the model
-- answers with an `edit` tool call whose old_string exists only in the unsaved text, then
-- with a final text. Afterwards the buffer holds the unsaved change with the agent's edit
-- applied (by Neovim, through workspace/applyEdit), it is still unsaved, the file on disk
-- is unchanged, and the transcript shows the answer.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

T.run('ask', function()
  local port, record = T.mock_model('ask.mock.json')
  vim.g.switchyard = { cmd_env = T.model_env(port) }

  -- Approvals come through vim.ui.select; the test answers as a user would, with the
  -- approving action.
  local approvals = T.picker(function(items)
    return T.find(items, 'Allow')
  end)

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
  T.eq(#approvals, 1, 'one approval asked')
  T.eq(approvals[1].items, { 'Allow', 'Allow for this session', 'Reject' }, 'the approval choices')
end)
