-- Review mode (`review = "changes"`): the model proposes a two-hunk multi_edit of
-- src/lib.rs; the diff opens in a new tab; the user accepts the first hunk and rejects
-- the second with the review buffer's keys and finishes. The buffer then holds exactly
-- the accepted hunk, the review tab is gone, and the model was told about the rejection.
-- From 0.10 the keys go through the review's mappings as typed; 0.7 answers the request
-- before its handler returns, so its review is modal and reads the same keys itself.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

local api = vim.api

T.run('review', function()
  vim.o.columns, vim.o.lines = 160, 30
  local port, record = T.mock_model('review.mock.json')
  vim.g.switchyard = { cmd_env = T.model_env(port), review = 'changes' }
  -- Review replaces the approval prompt: a picker call would be a second question.
  local approve = false
  local picks = T.picker(function(items)
    return approve and T.find(items, 'Allow') or nil
  end)

  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  vim.cmd('edit src/lib.rs')
  local file = api.nvim_get_current_buf()
  local before = T.lines(file)
  T.on_failure('src/lib.rs', function()
    return table.concat(T.lines(file), '\n')
  end)
  T.on_failure('transcript', function()
    return table.concat(T.lines(require('switchyard.chat').transcript()), '\n')
  end)

  local seen = {}
  local function tally()
    return require('switchyard.review').status_text()
  end
  api.nvim_create_autocmd('User', {
    pattern = 'SwitchyardReview',
    once = true,
    callback = function()
      local win = api.nvim_get_current_win()
      seen.tabs = #api.nvim_list_tabpages()
      seen.diff = vim.wo[win].diff
      seen.proposed = T.lines(api.nvim_win_get_buf(win))
      seen.opened = tally()
      seen.screen = T.capture('review-opened')
      if vim.fn.has('nvim-0.10') == 1 then
        vim.schedule(function()
          T.press('a')
          seen.after_accept = tally()
          T.capture('review-first-accepted')
          T.press('r')
          seen.after_reject = tally()
          T.capture('review-second-rejected')
          T.press('q')
        end)
      else
        -- Typed ahead: the modal review reads them.
        api.nvim_feedkeys('arq', 't', false)
      end
    end,
  })

  T.wait_event('SwitchyardChatDone', 40000, function()
    vim.cmd('Switchyard chat Tidy the library')
    T.record_servers()
  end)
  T.log('seen: %s', vim.inspect(seen))
  T.eq(seen.tabs, 2, 'the review opened in a tab of its own')
  T.check(seen.diff, 'the review window is in diff mode')
  T.eq(seen.proposed[1], '//! The greeter library, tidied.', 'the review buffer shows the proposed text')
  T.eq(seen.opened, 'Review multi_edit src/lib.rs: 0 accepted, 0 rejected, 2 undecided of 2', 'the status of the opened review')
  T.check(T.find(seen.screen, 'Review multi_edit src/lib.rs: 0 accepted') ~= nil, 'the status line is on the screen')
  T.check(T.find(seen.screen, 'a/r hunk · A/R all · q finish') ~= nil, 'the keys are on the screen')
  T.check(T.find(seen.screen, 'hunk 1/2 ? undecided') ~= nil, 'the hunk marks are on the screen')
  if vim.fn.has('nvim-0.10') == 1 then
    T.check(seen.after_accept:find('1 accepted, 0 rejected, 1 undecided', 1, true), 'after a: ' .. tostring(seen.after_accept))
    T.check(seen.after_reject:find('1 accepted, 1 rejected, 0 undecided', 1, true), 'after r: ' .. tostring(seen.after_reject))
  else
    local modal = vim.tbl_filter(function(n)
      return tostring(n.message):find('modal', 1, true) ~= nil
    end, T.notifications)
    T.eq(#modal, 1, 'a note says the review is modal on this Neovim')
  end

  local expected = vim.deepcopy(before)
  expected[1] = '//! The greeter library, tidied.'
  T.eq(T.lines(file), expected, 'the buffer holds exactly the accepted hunk')
  T.eq(#api.nvim_list_tabpages(), 1, 'the review tab is closed')
  T.eq(#picks, 0, 'no approval prompt besides the review')
  local transcript = table.concat(T.lines(require('switchyard.chat').transcript()), '\n')
  T.check(transcript:find('> review of src/lib.rs: 1 of 2 hunks accepted', 1, true), 'the chat notes the review')
  T.check(transcript:find('Applied the part you accepted.', 1, true), 'the answer after the review')
  local requests = T.requests(record)
  T.eq(#requests, 2, 'model requests')
  local told
  for _, message in ipairs(requests[2].body.messages) do
    if message.role == 'tool' then
      told = message.content
    end
  end
  T.log('the tool result the model saw: %s', tostring(told))
  T.check(
    type(told) == 'string' and told:find('Rejected, so not in the file: hunk 2 (line 14: `assert_eq!(super::greet("Grace")', 1, true),
    'the model is told that hunk 2 (the "Grace" line) was rejected'
  )
  T.check(told:find('applied 1 of 2', 1, true), 'the model is told that one hunk of two was applied')
  T.capture('review-done')

  -- :Switchyard review off, while the server runs: the next change asks for approval
  -- (through vim.ui.select) and is applied without a review.
  vim.cmd('Switchyard review off')
  approve = true
  local reviews = 0
  api.nvim_create_autocmd('User', {
    pattern = 'SwitchyardReview',
    callback = function()
      reviews = reviews + 1
    end,
  })
  T.wait_event('SwitchyardChatDone', 40000, function()
    vim.cmd('Switchyard chat Tidy it again')
  end)
  T.eq(reviews, 0, 'no review once review is off')
  T.eq(#picks, 1, 'an approval instead')
  T.eq(api.nvim_buf_get_lines(file, 0, 1, false), { '//! The greeter library, tidied twice.' }, 'the change applied')
end)
