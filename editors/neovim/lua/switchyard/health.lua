--- `:checkhealth switchyard`: the options, the server binary and its version, the model
--- provider, and the running client. Never shows the value of a key.
local config = require('switchyard.config')

local M = {}

--- The reporting functions of this Neovim: `vim.health.start/ok/...` (0.9+), else
--- `report_start/report_ok/...` of `vim.health` (0.8) or of `health` (0.7).
local function reporter()
  local h = vim.health
  if h and h.start then
    return h
  end
  if not (h and h.report_start) then
    h = require('health')
  end
  return {
    start = h.report_start,
    ok = h.report_ok,
    info = h.report_info,
    warn = h.report_warn,
    error = h.report_error,
  }
end

local provider_env = {
  openai = { key = 'OPENAI_API_KEY', base = 'OPENAI_BASE_URL' },
  anthropic = { key = 'ANTHROPIC_API_KEY', base = 'ANTHROPIC_BASE_URL' },
}

local function nonempty(v)
  return type(v) == 'string' and v ~= ''
end

local function check_options(h, cfg, errors)
  h.start('options')
  if #errors == 0 then
    h.ok('options are valid')
  else
    for _, message in ipairs(errors) do
      h.error(message, {
        'fix vim.g.switchyard or the table given to setup(); see :help switchyard-config',
      })
    end
  end
  h.info(('command: %s'):format(table.concat(cfg.cmd, ' ')))
end

local function check_binary(h, cfg)
  h.start('server')
  local exe = cfg.cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    h.error(('`%s` not found or not executable'):format(exe), {
      'install it: cargo install --path server (from the switchyard repository)',
      'or put it on PATH, or set cmd = { "/path/to/switchyard", "lsp" }',
    })
    return
  end
  h.ok(('`%s` found: %s'):format(exe, vim.fn.exepath(exe)))
  local output = vim.fn.system({ exe, '--version' })
  local version = vim.trim(((output or ''):gsub('\n.*', '')))
  if vim.v.shell_error ~= 0 or version == '' then
    h.error(('`%s --version` failed (exit %d): %s'):format(exe, vim.v.shell_error, version), {
      'run it in a shell to see why; reinstall if the binary is broken',
    })
  elseif not version:match('^switchyard ') then
    h.warn(('unexpected version output: %s'):format(version), {
      'is `' .. exe .. '` really switchyard? set cmd to the right binary',
    })
  else
    h.ok(('version: %s'):format(version))
  end
end

local function check_provider(h, cfg)
  h.start('model provider')
  local env = setmetatable({}, {
    __index = function(_, name)
      local v = cfg.cmd_env[name]
      if v == nil then
        v = vim.env[name]
      end
      return v
    end,
  })
  local llm = type(cfg.settings.llm) == 'table' and cfg.settings.llm or {}
  if nonempty(llm.api_key) then
    h.warn('settings.llm.api_key is set in the editor settings', {
      'prefer the OPENAI_API_KEY / ANTHROPIC_API_KEY environment variables (or cmd_env)',
    })
  end
  local provider = llm.provider or env.SWITCHYARD_PROVIDER
  local source = llm.provider and 'settings.llm.provider' or 'SWITCHYARD_PROVIDER'
  if provider == nil then
    -- As the server does: anthropic when only Anthropic is configured, else openai.
    local openai = nonempty(env.OPENAI_API_KEY) or nonempty(env.OPENAI_BASE_URL)
    local anthropic = nonempty(env.ANTHROPIC_API_KEY) or nonempty(env.ANTHROPIC_BASE_URL)
    if anthropic and not openai then
      provider, source = 'anthropic', 'ANTHROPIC_* variables'
    elseif openai then
      provider, source = 'openai', 'OPENAI_* variables'
    end
  end
  if provider == nil then
    h.warn('no model provider configured: `analyze` works, `ask` needs a model', {
      'set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server) or ANTHROPIC_API_KEY',
      'and SWITCHYARD_MODEL, in the environment or in cmd_env',
      'or configure [llm] in .switchyard.toml or ~/.config/switchyard/config.toml',
    })
    return
  end
  local names = provider_env[provider]
  if not names then
    h.error(('unknown provider `%s` (from %s)'):format(tostring(provider), source), {
      'use "openai" or "anthropic"',
    })
    return
  end
  local with = {}
  if nonempty(llm.base_url) or nonempty(env[names.base]) then
    table.insert(with, nonempty(llm.base_url) and 'settings.llm.base_url' or (names.base .. ' is set'))
  end
  if nonempty(llm.api_key) or nonempty(env[names.key]) then
    table.insert(with, names.key .. ' is set')
  end
  h.ok(('provider: %s (from %s%s)'):format(provider, source, #with > 0 and ('; ' .. table.concat(with, ', ')) or ''))
  if not nonempty(llm.api_key) and not nonempty(env[names.key]) and not nonempty(env[names.base]) then
    h.warn(('%s is not set'):format(names.key), {
      ('set %s in the environment or cmd_env (a local server needs only %s)'):format(names.key, names.base),
    })
  end
  local model = llm.model or env.SWITCHYARD_MODEL
  if nonempty(model) then
    h.ok(('model: %s'):format(model))
  else
    h.warn('no model named in the editor settings or SWITCHYARD_MODEL', {
      'set SWITCHYARD_MODEL, settings.llm.model, or llm.model in .switchyard.toml',
    })
  end
end

local function check_client(h)
  h.start('language server')
  local ok, lsp = pcall(require, 'switchyard.lsp')
  local clients = ok and lsp.clients() or {}
  if #clients == 0 then
    h.info('not running (it starts on the first :Switchyard command)')
    return
  end
  for _, client in ipairs(clients) do
    h.ok(('running: client %d, root %s'):format(client.id, client.config.root_dir))
  end
  local status = lsp.status()
  h.info('lanes: ' .. (status == '' and 'idle' or status))
end

local function check_chat(h, cfg)
  h.start('chat and review')
  h.info(('chat layout: %s; review: %s; models offered: %s'):format(
    cfg.chat.layout,
    cfg.review,
    #cfg.models > 0 and table.concat(cfg.models, ', ') or 'none (:Switchyard model asks for a name)'
  ))
  if vim.fn.has('nvim-0.10') == 1 then
    h.ok('approvals and reviews wait for your answer (vim.ui.select and pickers that replace it work)')
  else
    h.warn('this Neovim answers server requests before the handler returns', {
      'approvals: a vim.ui.select that answers later (telescope, fzf-lua, snacks) falls back to inputlist',
      'reviews are modal: only their keys and motions work until you finish one',
      'Neovim 0.10 or newer lifts both',
    })
  end
  if cfg.chat.layout == 'float' and vim.fn.has('nvim-0.9') == 0 then
    h.info('the chat float has no title before Neovim 0.9')
  end
end

--- Runs the checks.
function M.check()
  local h = reporter()
  local cfg, errors = config.get()
  if vim.fn.has('nvim-0.7') == 0 then
    h.start('switchyard')
    h.error('Neovim 0.7 or newer is required')
    return
  end
  check_options(h, cfg, errors)
  check_binary(h, cfg)
  check_provider(h, cfg)
  check_chat(h, cfg)
  check_client(h)
end

return M
