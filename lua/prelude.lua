-- The luamr prelude: compiled to bytecode into the binary and run in every script state
-- before the job script (strict globals are switched on right after it).
-- It receives the method tables of frames and of grouped frames, and defines the
-- aggregate constructors (count, sum, ...) used in g:agg{...}.
local frame_methods, grouped_methods = ...

-- Each constructor call gets a sequence number: agg{ a = sum("x"), b = count() }
-- builds its table in source order, so sorting by seq gives the columns that order.
local seq = 0
local agg_mt = {
  __tostring = function(a)
    if a.q then return string.format("%s(%s, %g)", a.fn, tostring(a.col), a.q) end
    return a.fn .. "(" .. (a.col and string.format("%q", a.col) or "") .. ")"
  end,
}

local function agg(fn, col, q)
  if col ~= nil and type(col) ~= "string" then
    error(fn .. ": the column must be a name, got " .. type(col), 3)
  end
  seq = seq + 1
  return setmetatable({ fn = fn, col = col, q = q, seq = seq }, agg_mt)
end

local function need_col(fn, col)
  if type(col) ~= "string" then error(fn .. "(col): give a column name", 3) end
end

local function need_q(fn, q)
  if type(q) ~= "number" or q < 0 or q > 1 then
    error(fn .. "(col, q): q must be a number in [0, 1]", 3)
  end
end

function count(col) return agg("count", col) end
function count_distinct(col) need_col("count_distinct", col); return agg("count_distinct", col) end
function sum(col) need_col("sum", col); return agg("sum", col) end
function mean(col) need_col("mean", col); return agg("mean", col) end
function min(col) need_col("min", col); return agg("min", col) end
function max(col) need_col("max", col); return agg("max", col) end
function first(col) need_col("first", col); return agg("first", col) end
function quantile(col, q)
  need_col("quantile", col); need_q("quantile", q)
  return agg("quantile", col, q)
end
function median(col) need_col("median", col); return agg("quantile", col, 0.5) end
function approx_quantile(col, q)
  need_col("approx_quantile", col); need_q("approx_quantile", q)
  return agg("approx_quantile", col, q)
end
avg = mean

-- f:agg{...}: aggregate the whole frame into one row.
function frame_methods.agg(self, spec)
  return self:group_by():agg(spec)
end

-- f:print([n]): the aligned table (first n rows, default 20) to the task log.
function frame_methods.print(self, n)
  print(self:format(n))
  return self
end

-- g:count(): rows per group, the common case of agg{ count = count() }.
function grouped_methods.count(self, name)
  return self:agg({ [name or "count"] = count() })
end
