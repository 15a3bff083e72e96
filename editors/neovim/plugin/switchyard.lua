-- switchyard: defines the :Switchyard command and its <Plug> mappings. Everything else
-- (configuration, the language client, health) loads on first use; nothing is started
-- and no keys are mapped for the user.

if vim.g.loaded_switchyard then
  return
end
vim.g.loaded_switchyard = 1

if vim.fn.has('nvim-0.7') == 0 then
  vim.api.nvim_err_writeln('switchyard: Neovim 0.7 or newer is required')
  return
end

vim.api.nvim_create_user_command('Switchyard', function(opts)
  require('switchyard').command(opts)
end, {
  nargs = '*',
  range = true,
  desc = 'Switchyard: chat [new|{prompt}] | stop | sessions | model [name] | rewind | mcp [start] | review [changes|off] | analyze | ask {prompt} | cancel [id] | stats | deadletters | restart',
  complete = function(arglead, cmdline, cursorpos)
    return require('switchyard').complete(arglead, cmdline, cursorpos)
  end,
})

local function plug(lhs, modes, rhs, desc)
  vim.keymap.set(modes, '<Plug>(' .. lhs .. ')', rhs, { silent = true, desc = desc })
end

plug('SwitchyardAnalyze', 'n', function()
  require('switchyard').analyze()
end, 'Switchyard: analyze the workspace')
plug('SwitchyardAsk', 'n', function()
  require('switchyard').ask()
end, 'Switchyard: ask about the current file')
-- In Visual mode ":" inserts the '<,'> range, so the selection becomes the context.
plug('SwitchyardAsk', 'x', ':Switchyard ask<CR>', 'Switchyard: ask about the selection')
plug('SwitchyardCancel', 'n', function()
  require('switchyard').cancel()
end, 'Switchyard: cancel everything running')
plug('SwitchyardStats', 'n', function()
  require('switchyard').stats()
end, 'Switchyard: show queue stats')
plug('SwitchyardDeadLetters', 'n', function()
  require('switchyard').deadletters()
end, 'Switchyard: list and retry dead letters')
plug('SwitchyardRestart', 'n', function()
  require('switchyard').restart()
end, 'Switchyard: restart the language server')

-- The chat (see :help switchyard-chat).
plug('SwitchyardChat', 'n', function()
  require('switchyard.chat').open()
end, 'Switchyard: open the chat')
plug('SwitchyardChatSubmit', { 'n', 'i' }, function()
  require('switchyard.chat').submit()
end, 'Switchyard: send the chat prompt')
plug('SwitchyardChatStop', 'n', function()
  require('switchyard.chat').stop()
end, "Switchyard: stop the chat's request")
plug('SwitchyardChatRewind', 'n', function()
  require('switchyard.chat').rewind()
end, 'Switchyard: rewind to the message under the cursor')
plug('SwitchyardSessions', 'n', function()
  require('switchyard.chat').sessions()
end, 'Switchyard: switch, resume or delete a session')
plug('SwitchyardModel', 'n', function()
  require('switchyard.chat').pick_model()
end, "Switchyard: pick the chat's model")
plug('SwitchyardMcp', 'n', function()
  require('switchyard').mcp()
end, 'Switchyard: show the MCP servers')

-- Review of a change (see :help switchyard-review); they act in the review's buffers.
plug('SwitchyardReviewAccept', 'n', function()
  require('switchyard.review').decide(true)
end, 'Switchyard: accept the hunk under the cursor')
plug('SwitchyardReviewReject', 'n', function()
  require('switchyard.review').decide(false)
end, 'Switchyard: reject the hunk under the cursor')
plug('SwitchyardReviewAcceptAll', 'n', function()
  require('switchyard.review').decide_all(true)
end, 'Switchyard: accept every hunk and finish')
plug('SwitchyardReviewRejectAll', 'n', function()
  require('switchyard.review').decide_all(false)
end, 'Switchyard: reject every hunk and finish')
plug('SwitchyardReviewFinish', 'n', function()
  require('switchyard.review').finish()
end, 'Switchyard: finish the review (undecided hunks are rejected)')
