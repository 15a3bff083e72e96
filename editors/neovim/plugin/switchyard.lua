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
  desc = 'Switchyard: analyze | ask {prompt} | cancel [id] | stats | deadletters | restart',
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
