-- The chat against the mock model, as a user drives it: a prompt typed into the prompt
-- buffer streams a Markdown answer with a parallel batch of tool lines; an edit asks for
-- approval through vim.ui.select (replaced here as a picker plugin replaces it); the
-- usage line and the statusline show tokens and cost; a rewind takes the file and the
-- conversation back; the model is changed through the picker; a request is stopped; a
-- second session is started and the first one resumed through :Switchyard sessions.
-- Each step saves the visible screen (T.capture).
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

local api = vim.api

T.run('chat', function()
  vim.o.columns, vim.o.lines = 110, 42
  local port, record = T.mock_model('chat.mock.json')
  vim.g.switchyard = {
    cmd_env = T.model_env(port),
    settings = { llm = { pricing = { mock = { input = 2.0, output = 8.0 }, ['mock-2'] = { input = 1.0, output = 4.0 } } } },
    models = { 'mock', 'openai:mock-2' },
  }
  -- What the user picks, in order: each a function(items as shown, prompt) -> index.
  local answers = {}
  local picks = T.picker(function(shown, prompt)
    local answer = table.remove(answers, 1)
    return answer and answer(shown, prompt) or nil
  end)
  local function pick(text)
    table.insert(answers, function(shown)
      return T.find(shown, text)
    end)
  end

  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  vim.cmd('edit src/greeting.rs')
  local file = api.nvim_get_current_buf()
  local chat = require('switchyard.chat')
  vim.cmd('Switchyard chat')
  local transcript, prompt = chat.transcript(), chat.prompt()
  T.check(vim.fn.bufwinid(transcript) ~= -1, 'the transcript is visible')
  T.eq(api.nvim_get_current_buf(), prompt, 'the cursor is in the prompt buffer')
  T.eq(vim.bo[transcript].filetype, 'markdown', "the transcript's filetype")
  T.on_failure('transcript', function()
    return table.concat(T.lines(transcript), '\n')
  end)
  local function text()
    return table.concat(T.lines(transcript), '\n')
  end
  local function has_line(pattern)
    for _, line in ipairs(T.lines(transcript)) do
      if line:find(pattern) then
        return true
      end
    end
    return false
  end
  local function send(keys)
    api.nvim_set_current_win(vim.fn.bufwinid(prompt))
    T.wait_event('SwitchyardChatDone', 30000, function()
      T.press(keys)
      T.record_servers()
    end)
  end

  -- 1. A prompt typed and sent with <C-s> in Insert mode: the streamed Markdown answer and
  -- the batch of three read-only calls, all three running at once before any finished.
  local running, most = 0, 0
  api.nvim_buf_attach(transcript, false, {
    on_lines = function()
      running = 0
      for _, line in ipairs(api.nvim_buf_get_lines(transcript, 0, -1, false)) do
        if line:find('^%- ⋯ `') then
          running = running + 1
        end
      end
      most = math.max(most, running)
    end,
  })
  send('iLook around the sources and tell me what the greeting says<C-s>')
  local screen = T.capture('answer')
  T.check(has_line('^## You · turn 1$'), 'the prompt is headed with its turn')
  T.check(has_line('^Look around the sources and tell me what the greeting says$'), 'the prompt is shown')
  T.check(has_line('^Let me look at the sources%.$'), 'the text before the tool calls')
  T.check(has_line('^%- ✓ `read [^`]*greeting%.rs` · query · completed · %d+ ms'), 'the read line, completed')
  T.check(has_line('^%- ✓ `grep [^`]*hello[^`]*` · query · completed · %d+ ms'), 'the grep line, completed')
  T.check(has_line('^%- ✓ `glob [^`]*` · query · completed · %d+ ms'), 'the glob line, completed')
  T.eq(most, 3, 'tool lines running at once (the parallel batch)')
  T.check(has_line('^## Findings$'), 'the Markdown heading of the answer')
  T.check(has_line('^%- `greeting%(%)` returns %*%*"hello"%*%*$'), 'the Markdown list of the answer')
  T.check(has_line('^_usage: this turn [%d,]+ in, [%d,]+ out, %$%d+%.%d+ · session [%d,]+ in, [%d,]+ out, %$%d+%.%d+_$'), 'the usage line, with cost')
  T.check(T.find(screen, '✓ `read') ~= nil, 'the tool lines are on the screen')
  -- Once the lanes are idle (their status comes at most ten times a second), the
  -- statusline is the session's usage and cost.
  local status
  T.wait(5000, function()
    status = require('switchyard').statusline()
    return status:find('^[%d,]+ in, [%d,]+ out, %$%d+%.%d+$') ~= nil
  end, 'the statusline to show the session usage and cost alone')
  T.log('statusline: %s', status)
  T.eq(api.nvim_buf_get_lines(prompt, 0, -1, false), { '' }, 'the prompt buffer is emptied')

  -- 2. An edit asks for approval through vim.ui.select; the user allows it; it lands.
  pick('Allow')
  send('iMake the greeting say hi<Esc><CR>')
  local approval = picks[#picks]
  T.eq(approval.items, { 'Allow', 'Allow for this session', 'Reject' }, 'the approval picker items')
  T.check(tostring(approval.prompt):find('edit', 1, true), 'the approval names the tool: ' .. tostring(approval.prompt))
  T.eq(api.nvim_buf_get_lines(file, 2, 3, false), { '    "hi"' }, 'the edit is in the buffer')
  T.check(has_line('→ %*%*Allow%*%*$'), 'the approval is in the transcript')
  T.check(has_line('^%- ✓ `edit [^`]*` · execute · completed'), 'the edit line, completed')
  T.check(has_line('^Done: the greeting says hi%.$'), 'the answer after the edit')
  T.capture('approval')

  -- 3. Rewind from the second message: the file and the conversation go back.
  local twin = vim.fn.bufwinid(transcript)
  local row
  for i, line in ipairs(T.lines(transcript)) do
    if line == '## You · turn 2' then
      row = i
    end
  end
  T.check(row, 'the second message in the transcript')
  api.nvim_set_current_win(twin)
  api.nvim_win_set_cursor(twin, { row + 1, 0 })
  pick('files and conversation')
  T.wait_event('SwitchyardRewound', 20000, function()
    T.press('gr')
  end)
  T.eq(picks[#picks].items, { 'files and conversation', 'conversation only', 'files only' }, 'the rewind picker')
  T.eq(api.nvim_buf_get_lines(file, 2, 3, false), { '    "hello"' }, 'the file is back in the buffer')
  T.check(not has_line('^## You · turn 2$'), 'the rewound message left the transcript')
  T.check(has_line('^_rewound to before turn 2 %(files and conversation%): restored src/greeting%.rs_$'), 'the rewind note')
  T.eq(api.nvim_buf_get_lines(prompt, 0, -1, false), { 'Make the greeting say hi' }, 'the prompt is back for editing')
  T.capture('rewind')
  api.nvim_buf_set_lines(prompt, 0, -1, false, {})

  -- 4. Another model through the picker; the next request goes to it.
  pick('mock-2')
  vim.cmd('Switchyard model')
  T.eq(picks[#picks].items, { 'mock', 'mock-2 (openai)' }, 'the model picker items')
  T.wait(5000, function()
    return has_line('^_model: mock%-2 %(openai%) from the next prompt on_$')
  end, 'the model note')
  send('iWhich model are you?<C-s>')
  T.check(has_line('^I am mock%-2, at your service%.$'), 'the answer of the other model')
  local requests = T.requests(record)
  T.eq(requests[#requests].body.model, 'mock-2', 'the model of the last request')
  T.check(not text():find('## You · turn 2\nMake the greeting', 1, true), 'still rewound')
  T.capture('model')

  -- 5. Stop: a request the model never answers, stopped with <C-c>.
  local before = #T.requests(record)
  api.nvim_set_current_win(vim.fn.bufwinid(prompt))
  T.wait_event('SwitchyardChatDone', 20000, function()
    T.press('iTake your time<Esc>')
    T.press('<CR>')
    T.wait(10000, function()
      return #T.requests(record) > before
    end, 'the request to reach the model')
    T.check(require('switchyard').statusline():find('⋯', 1, true), 'the statusline says a request runs')
    T.press('<C-c>')
  end)
  T.check(has_line('^%*%*stopped%*%*$'), 'the transcript says it stopped')
  T.capture('stop')

  -- 6. A new session, then the first one resumed through :Switchyard sessions.
  local first = chat.session()
  vim.cmd('Switchyard chat new')
  T.eq(T.lines(transcript), { '' }, 'a new chat starts empty')
  send('iA second session please<C-s>')
  T.check(has_line('^Second session here%.$'), 'the second session answers')
  T.check(chat.session() ~= first, 'a second session')
  pick('Look around')
  pick('resume')
  T.wait_event('SwitchyardChatResumed', 20000, function()
    vim.cmd('Switchyard sessions')
  end)
  local listed = picks[#picks - 1].items
  T.log('sessions listed: %s', vim.inspect(listed))
  T.eq(#listed, 2, 'two sessions listed')
  T.check(T.find(listed, 'A second session please') and listed[T.find(listed, 'A second session please')]:find('· current$'), 'the current session is marked')
  T.eq(picks[#picks].items, { 'resume', 'delete' }, 'the session actions')
  T.check(has_line('^# Look around the sources'), 'the resumed session is titled')
  T.check(has_line('^_resumed session '), 'the resume note')
  send('iContinue the first session<C-s>')
  T.check(has_line('^Back in the first session%.$'), 'the first session answers')
  requests = T.requests(record)
  local last = requests[#requests].raw_body
  T.check(last:find('Look around the sources', 1, true), "the request carries the first session's history")
  T.check(not last:find('A second session', 1, true), "the request does not carry the second session's")
  T.eq(chat.session(), first, 'the chat continues the first session')
  T.capture('resumed')

  -- The second session deleted from the same picker: the list has one left.
  pick('A second session please')
  pick('delete')
  T.wait_event('SwitchyardSessionDeleted', 20000, function()
    vim.cmd('Switchyard sessions')
  end)
  local calls = #picks
  table.insert(answers, function()
    return nil
  end)
  vim.cmd('Switchyard sessions')
  T.wait(10000, function()
    return #picks > calls
  end, 'the sessions picker again')
  T.eq(#picks[#picks].items, 1, 'one session is left')
  T.check(picks[#picks].items[1]:find('^Look around the sources'), 'the first session is the one left')

  -- 7. The floating layout: the transcript and the prompt in floats over the file.
  for _, buf in ipairs({ transcript, prompt }) do
    api.nvim_win_close(vim.fn.bufwinid(buf), true)
  end
  require('switchyard').setup({ chat = { layout = 'float' } })
  vim.cmd('Switchyard chat')
  local fwin = vim.fn.bufwinid(transcript)
  T.check(fwin ~= -1 and api.nvim_win_get_config(fwin).relative == 'editor', 'the transcript is a float')
  T.eq(api.nvim_win_get_config(api.nvim_get_current_win()).relative, 'editor', 'the prompt is a float')
  T.eq(api.nvim_get_current_buf(), prompt, 'the cursor is in the prompt')
  local floated = T.capture('float')
  T.check(T.find(floated, 'Back in the first session.') ~= nil, 'the float shows the transcript')
  local untitled = vim.tbl_filter(function(n)
    return tostring(n.message):find('no float titles', 1, true) ~= nil
  end, T.notifications)
  T.eq(#untitled, vim.fn.has('nvim-0.9') == 1 and 0 or 1, 'a note about float titles, before 0.9 only')

  -- 8. The model's reasoning, folded under a "Thinking…" line, and its plan as a checklist.
  vim.cmd('Switchyard chat new')
  send('iThink and plan<C-s>')
  T.check(has_line('^%- %[x%] Read greeting%.rs$'), 'the completed step of the plan')
  T.check(has_line('^%- %[>%] Answer$'), 'the step in progress')
  T.check(has_line('^Planned and answered%.$'), 'the answer after the plan')
  local thinking = {}
  for i, line in ipairs(T.lines(transcript)) do
    if line == '> _Thinking…_' then
      table.insert(thinking, i)
    end
  end
  T.eq(#thinking, 2, 'one Thinking… line per model call')
  T.eq(T.lines(transcript)[thinking[1] + 1], '> Two steps:', 'the reasoning under its line')
  T.eq(T.lines(transcript)[thinking[1] + 2], '> read, then answer.', 'its second line')
  T.eq(T.lines(transcript)[thinking[2] + 1], '> Done reading.', 'the reasoning of the second call')
  local win = vim.fn.bufwinid(transcript)
  api.nvim_win_call(win, function()
    T.eq(vim.fn.foldclosed(thinking[1]), thinking[1], 'the reasoning is folded, from its line')
    T.eq(vim.fn.foldclosedend(thinking[1]), thinking[1] + 2, 'to its last line')
    T.eq(vim.fn.foldclosed(thinking[2] + 1), thinking[2], 'the second reasoning is folded too')
    local shown = vim.fn.foldtextresult(thinking[1])
    T.check(shown:find('3 lines: > _Thinking…_', 1, true), 'the folded line says Thinking…: ' .. shown)
  end)
  T.capture('thoughts')
end)
