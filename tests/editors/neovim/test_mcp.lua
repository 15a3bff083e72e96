-- :Switchyard mcp start with two MCP servers configured in the editor's settings: the
-- real `@modelcontextprotocol/server-everything` (Node, from tests/provision) and one
-- whose command does not exist. The window lists each with its state and tools, and
-- the failed one with its last error.
local T = dofile(os.getenv('SWITCHYARD_TEST_DIR') .. '/helpers.lua')

local api = vim.api

T.run('mcp', function()
  vim.o.columns, vim.o.lines = 110, 40
  local node = assert(os.getenv('SWITCHYARD_NODE24'), 'SWITCHYARD_NODE24 is not set (source the env of tests/provision)')
  local modules = assert(os.getenv('SWITCHYARD_MCP_MODULES'), 'SWITCHYARD_MCP_MODULES is not set')
  vim.g.switchyard = {
    settings = {
      mcp_servers = {
        everything = {
          command = node,
          args = { modules .. '/@modelcontextprotocol/server-everything/dist/index.js', 'stdio' },
          startup_timeout_ms = 30000,
        },
        broken = { command = 'switchyard-test-no-such-mcp-server' },
      },
    },
  }
  vim.cmd('cd ' .. vim.fn.fnameescape(T.workspace))
  vim.cmd('edit src/lib.rs')
  T.wait_event('SwitchyardMcp', 40000, function()
    vim.cmd('Switchyard mcp start')
    T.record_servers()
  end)
  local bufnr = vim.fn.bufnr('^switchyard://mcp$')
  T.check(bufnr ~= -1 and vim.fn.bufwinid(bufnr) ~= -1, 'the MCP window is visible')
  local lines = T.lines(bufnr)
  T.on_failure('switchyard://mcp', function()
    return table.concat(lines, '\n')
  end)
  local text = table.concat(lines, '\n')
  T.check(text:find('\n## everything · running · %d+ tools · 0 restarts\n') ~= nil, 'the running server and its tool count')
  T.check(text:find('\n%- `mcp__everything__echo` %(read%-only%)') or text:find('\n%- `mcp__everything__echo`'), 'its echo tool')
  T.check(text:find('\n## broken · failed · 0 tools · %d+ restarts?\n') ~= nil, 'the failed server')
  T.check(text:find('\nlast error: [^\n]*switchyard%-test%-no%-such%-mcp%-server') ~= nil, 'its last error names the command')
  T.eq(vim.bo[bufnr].filetype, 'markdown', 'the MCP window is Markdown')
  T.capture('mcp')
  T.check(api.nvim_buf_is_valid(bufnr), 'the buffer stays')
end)
